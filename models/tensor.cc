// Tensors; see tensor.h.
#include "lumen/tensor.h"

#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"

namespace lumen::models {
namespace {

struct TypeName {
  DataType type;
  const char* v2;
  const char* triton;
  size_t size;
};

constexpr TypeName kTypes[] = {
    {DataType::kBool, "BOOL", "TYPE_BOOL", 1},
    {DataType::kUint8, "UINT8", "TYPE_UINT8", 1},
    {DataType::kUint16, "UINT16", "TYPE_UINT16", 2},
    {DataType::kUint32, "UINT32", "TYPE_UINT32", 4},
    {DataType::kUint64, "UINT64", "TYPE_UINT64", 8},
    {DataType::kInt8, "INT8", "TYPE_INT8", 1},
    {DataType::kInt16, "INT16", "TYPE_INT16", 2},
    {DataType::kInt32, "INT32", "TYPE_INT32", 4},
    {DataType::kInt64, "INT64", "TYPE_INT64", 8},
    {DataType::kFp16, "FP16", "TYPE_FP16", 2},
    {DataType::kFp32, "FP32", "TYPE_FP32", 4},
    {DataType::kFp64, "FP64", "TYPE_FP64", 8},
    {DataType::kBytes, "BYTES", "TYPE_STRING", 0},
};

}  // namespace

std::optional<DataType> ParseDataType(std::string_view name) {
  for (const auto& t : kTypes) {
    if (name == t.v2 || name == t.triton) return t.type;
  }
  return std::nullopt;
}

const char* DataTypeName(DataType type) {
  for (const auto& t : kTypes) {
    if (t.type == type) return t.v2;
  }
  return "INVALID";
}

size_t ElementSize(DataType type) {
  for (const auto& t : kTypes) {
    if (t.type == type) return t.size;
  }
  return 0;
}

int64_t Tensor::NumElements() const {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) return -1;
    n *= d;
  }
  return n;
}

absl::StatusOr<std::vector<std::string>> Tensor::Strings() const {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < data.size()) {
    if (data.size() - at < 4) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", name, "': BYTES element ", out.size(), " has a cut length"));
    }
    uint32_t len;
    std::memcpy(&len, data.data() + at, 4);
    at += 4;
    if (len > data.size() - at) {
      return absl::InvalidArgumentError(absl::StrCat("input '", name, "': BYTES element ",
                                                     out.size(), " says ", len, " bytes but only ",
                                                     data.size() - at, " follow"));
    }
    out.emplace_back(data.substr(at, len));
    at += len;
  }
  if (static_cast<int64_t>(out.size()) != NumElements()) {
    return absl::InvalidArgumentError(absl::StrCat("input '", name, "' has ", out.size(),
                                                   " BYTES elements; its shape ",
                                                   ShapeString(shape), " needs ", NumElements()));
  }
  return out;
}

Tensor Tensor::FromStrings(std::string name, std::vector<int64_t> shape,
                           const std::vector<std::string>& values) {
  Tensor t{std::move(name), DataType::kBytes, std::move(shape), {}};
  for (const auto& v : values) {
    uint32_t len = static_cast<uint32_t>(v.size());
    t.data.append(reinterpret_cast<const char*>(&len), 4);
    t.data.append(v);
  }
  return t;
}

absl::Status Tensor::CheckSize() const {
  int64_t n = NumElements();
  if (n < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", name, "' has a bad shape ", ShapeString(shape)));
  }
  if (type == DataType::kBytes) return Strings().status();
  size_t want = static_cast<size_t>(n) * ElementSize(type);
  if (ElementSize(type) == 0 || data.size() != want) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' of ", DataTypeName(type),
                                                   " and shape ", ShapeString(shape), " needs ",
                                                   want, " bytes, not ", data.size()));
  }
  return absl::OkStatus();
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) absl::StrAppend(&s, i ? "," : "", shape[i]);
  return s + "]";
}

bool ShapeMatches(const std::vector<int64_t>& shape, const std::vector<int64_t>& dims) {
  if (shape.size() != dims.size()) return false;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (dims[i] != -1 && dims[i] != shape[i]) return false;
  }
  return true;
}

}  // namespace lumen::models
