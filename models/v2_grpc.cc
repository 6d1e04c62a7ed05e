// The v2 protocol's gRPC form (proto/grpc_service.proto); see v2.h. Kept
// apart from v2.cc so that the HTTP codec builds without generated code.
#include <array>
#include <cstring>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "models/v2.h"
#include "proto/grpc_service.pb.h"

namespace lumen::models::v2 {
namespace {

using ::inference::InferParameter;
using ::inference::InferTensorContents;
using ::inference::ModelInferRequest;

// Keeps a product of dims from overflowing once multiplied by an element
// size. No tighter bound is needed: an input's element count is compared
// with what the message carries before anything is allocated for it.
constexpr uint64_t kMaxElements = uint64_t{1} << 56;

template <typename... Parts>
absl::Status Bad(std::string_view input, const Parts&... parts) {
  // The installed abseil has its own string_view; std's does not convert.
  return absl::InvalidArgumentError(
      absl::StrCat("input '", absl::string_view(input.data(), input.size()), "': ", parts...));
}

nlohmann::json ParameterJson(const InferParameter& p) {
  switch (p.parameter_choice_case()) {
    case InferParameter::kBoolParam:
      return p.bool_param();
    case InferParameter::kInt64Param:
      return p.int64_param();
    case InferParameter::kStringParam:
      return p.string_param();
    case InferParameter::kDoubleParam:
      return p.double_param();
    case InferParameter::kUint64Param:
      return p.uint64_param();
    case InferParameter::PARAMETER_CHOICE_NOT_SET:
      break;
  }
  return nullptr;
}

// The typed field each datatype travels in; "" for FP16 (raw only).
const char* ContentsField(DataType type) {
  switch (type) {
    case DataType::kBool:
      return "bool_contents";
    case DataType::kInt8:
    case DataType::kInt16:
    case DataType::kInt32:
      return "int_contents";
    case DataType::kInt64:
      return "int64_contents";
    case DataType::kUint8:
    case DataType::kUint16:
    case DataType::kUint32:
      return "uint_contents";
    case DataType::kUint64:
      return "uint64_contents";
    case DataType::kFp32:
      return "fp32_contents";
    case DataType::kFp64:
      return "fp64_contents";
    case DataType::kBytes:
      return "bytes_contents";
    case DataType::kFp16:
    case DataType::kInvalid:
      break;
  }
  return "";
}

struct FieldSize {
  const char* name;
  int size;
};

// Each typed field and how many elements it holds.
std::array<FieldSize, 8> FieldSizes(const InferTensorContents& c) {
  return {{{"bool_contents", c.bool_contents_size()},
           {"int_contents", c.int_contents_size()},
           {"int64_contents", c.int64_contents_size()},
           {"uint_contents", c.uint_contents_size()},
           {"uint64_contents", c.uint64_contents_size()},
           {"fp32_contents", c.fp32_contents_size()},
           {"fp64_contents", c.fp64_contents_size()},
           {"bytes_contents", c.bytes_contents_size()}}};
}

// Copies `values` (a repeated field) into `t` as elements of T, each
// checked to fit (int_contents carries INT8 and INT16 too).
template <typename T, typename Values>
absl::Status CopyTyped(const Values& values, Tensor* t) {
  t->data.resize(static_cast<size_t>(values.size()) * sizeof(T));
  for (int i = 0; i < values.size(); ++i) {
    const auto v = values.Get(i);
    using V = std::remove_const_t<decltype(v)>;
    // Only narrowing needs a check; it is spelled per signedness because a
    // comparison that is always true or false trips -Wtype-limits.
    if constexpr (!std::is_same_v<T, V> && std::is_integral_v<T>) {
      bool fits = v <= static_cast<V>(std::numeric_limits<T>::max());
      if constexpr (std::is_signed_v<V>) {
        fits = fits && v >= static_cast<V>(std::numeric_limits<T>::min());
      }
      if (!fits) {
        return Bad(t->name, "element ", i, " (", v, ") is outside ", DataTypeName(t->type),
                   "'s range");
      }
    }
    const T e = static_cast<T>(v);
    std::memcpy(t->data.data() + static_cast<size_t>(i) * sizeof(T), &e, sizeof(T));
  }
  return absl::OkStatus();
}

absl::Status FromContents(const InferTensorContents& c, int64_t count, Tensor* t) {
  const char* want = ContentsField(t->type);
  if (*want == '\0') {
    return Bad(t->name, DataTypeName(t->type), " needs raw_input_contents");
  }
  int64_t given = 0;
  for (const FieldSize& f : FieldSizes(c)) {
    if (std::strcmp(f.name, want) == 0) {
      given = f.size;
    } else if (f.size > 0) {
      return Bad(t->name, "contents.", f.name, " is set, but ", DataTypeName(t->type),
                 " goes in contents.", want);
    }
  }
  if (given != count) {
    return Bad(t->name, "contents.", want, " has ", given, " elements; its shape ",
               ShapeString(t->shape), " needs ", count);
  }
  switch (t->type) {
    case DataType::kBool: {
      t->data.resize(static_cast<size_t>(count));
      for (int i = 0; i < c.bool_contents_size(); ++i) t->data[i] = c.bool_contents(i) ? 1 : 0;
      return absl::OkStatus();
    }
    case DataType::kInt8:
      return CopyTyped<int8_t>(c.int_contents(), t);
    case DataType::kInt16:
      return CopyTyped<int16_t>(c.int_contents(), t);
    case DataType::kInt32:
      return CopyTyped<int32_t>(c.int_contents(), t);
    case DataType::kInt64:
      return CopyTyped<int64_t>(c.int64_contents(), t);
    case DataType::kUint8:
      return CopyTyped<uint8_t>(c.uint_contents(), t);
    case DataType::kUint16:
      return CopyTyped<uint16_t>(c.uint_contents(), t);
    case DataType::kUint32:
      return CopyTyped<uint32_t>(c.uint_contents(), t);
    case DataType::kUint64:
      return CopyTyped<uint64_t>(c.uint64_contents(), t);
    case DataType::kFp32:
      return CopyTyped<float>(c.fp32_contents(), t);
    case DataType::kFp64:
      return CopyTyped<double>(c.fp64_contents(), t);
    case DataType::kBytes: {
      for (const std::string& s : c.bytes_contents()) {
        if (s.size() > std::numeric_limits<uint32_t>::max()) {
          return Bad(t->name, "an element is longer than BYTES allows (4 GiB)");
        }
        const uint32_t len = static_cast<uint32_t>(s.size());
        t->data.append(reinterpret_cast<const char*>(&len), 4);
        t->data.append(s);
      }
      return absl::OkStatus();
    }
    case DataType::kFp16:
    case DataType::kInvalid:
      break;
  }
  return Bad(t->name, "unsupported datatype");
}

bool HasContents(const ModelInferRequest::InferInputTensor& in) {
  if (!in.has_contents()) return false;
  for (const FieldSize& f : FieldSizes(in.contents())) {
    if (f.size > 0) return true;
  }
  return false;
}

absl::Status FromInput(const ModelInferRequest& request, int index, Tensor* t) {
  const ModelInferRequest::InferInputTensor& in = request.inputs(index);
  if (in.name().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("input ", index, " has no name"));
  }
  t->name = in.name();
  std::optional<DataType> type = ParseDataType(in.datatype());
  // ParseDataType also takes config names ("TYPE_FP32"); the protocol has
  // only the v2 ones.
  if (!type || in.datatype() != DataTypeName(*type)) {
    return Bad(t->name, "unknown datatype '", in.datatype().substr(0, 64),
               "' (BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64 or BYTES)");
  }
  t->type = *type;
  t->shape.assign(in.shape().begin(), in.shape().end());

  if (request.raw_input_contents_size() > 0 && HasContents(in)) {
    return Bad(t->name, "has both contents and raw_input_contents");
  }
  absl::StatusOr<int64_t> count = internal::ElementCount(t->name, t->shape, kMaxElements);
  if (!count.ok()) return count.status();
  if (request.raw_input_contents_size() > 0) {
    // CheckData compares sizes without allocating for the shape.
    t->data = request.raw_input_contents(index);
    return internal::CheckData(*t);
  }
  return FromContents(in.contents(), *count, t);
}

}  // namespace

absl::StatusOr<InferRequest> FromGrpc(const inference::ModelInferRequest& request) {
  InferRequest req;
  req.model = request.model_name();
  req.version = request.model_version();
  req.id = request.id();
  for (const auto& [key, value] : request.parameters()) {
    req.parameters[key] = ParameterJson(value);
  }
  // Meaningless for gRPC (outputs always travel raw); kept so that a
  // request reads the same whichever way it came.
  if (auto it = request.parameters().find("binary_data_output");
      it != request.parameters().end() && it->second.has_bool_param()) {
    req.binary_output_default = it->second.bool_param();
  }

  if (request.raw_input_contents_size() > 0 &&
      request.raw_input_contents_size() != request.inputs_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw_input_contents has ", request.raw_input_contents_size(), " entries for ",
                     request.inputs_size(), " inputs; it needs one per input"));
  }
  req.inputs.resize(request.inputs_size());
  for (int i = 0; i < request.inputs_size(); ++i) {
    absl::Status s = FromInput(request, i, &req.inputs[i]);
    if (!s.ok()) return s;
  }
  absl::Status unique = internal::CheckUniqueNames(req.inputs);
  if (!unique.ok()) return unique;

  std::set<std::string_view> seen;
  for (const auto& o : request.outputs()) {
    if (o.name().empty()) return absl::InvalidArgumentError("an output has no name");
    if (!seen.insert(o.name()).second) {
      return absl::InvalidArgumentError(absl::StrCat("output '", o.name(), "' is asked for twice"));
    }
    for (const char* unsupported : {"classification", "shared_memory_region"}) {
      if (o.parameters().find(unsupported) != o.parameters().end()) {
        return absl::InvalidArgumentError(absl::StrCat("output '", o.name(), "': parameter '",
                                                       unsupported, "' is not supported"));
      }
    }
    RequestedOutput out{o.name(), req.binary_output_default};
    if (auto it = o.parameters().find("binary_data");
        it != o.parameters().end() && it->second.has_bool_param()) {
      out.binary = it->second.bool_param();
    }
    req.outputs.push_back(std::move(out));
  }
  return req;
}

void ToGrpc(const InferResponse& response, inference::ModelInferResponse* out) {
  out->Clear();
  out->set_model_name(response.model);
  out->set_model_version(response.version);
  out->set_id(response.id);
  for (const Tensor& t : response.outputs) {
    auto* o = out->add_outputs();
    o->set_name(t.name);
    o->set_datatype(DataTypeName(t.type));
    for (int64_t d : t.shape) o->add_shape(d);
    out->add_raw_output_contents(t.data);
  }
}

}  // namespace lumen::models::v2
