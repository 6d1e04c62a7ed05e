// Fuzzes the v2 inference protocol's HTTP codec (models/v2.cc): an
// infer request body with its Inference-Header-Content-Length, parsed with
// ParseHttpInfer; a request it takes is answered with its own inputs as
// outputs by EncodeHttpInfer, and that answer must be well formed: its
// JSON part parses, its binary part is exactly the sizes it announces, and
// read back as a request it gives the same tensors wherever JSON can hold
// them exactly. Where the fast path (FastParseHttpInfer) takes a body, the
// JSON document path must give the same request.
//
// Input: the header's value, a newline, the body. Without a newline the
// whole input is the body and the header is absent.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <string_view>

#include "models/v2.h"
#include "nlohmann/json.hpp"

namespace {

using lumen::models::DataType;
using lumen::models::Tensor;
using Json = nlohmann::json;

[[noreturn]] void Fail() { __builtin_trap(); }

// Whether JSON carries `t` exactly: not FP16 (written as numbers the
// parser refuses), floats all finite, BYTES all UTF-8 (else U+FFFD),
// BOOL all 0 or 1.
bool JsonExact(const Tensor& t) {
  switch (t.type) {
    case DataType::kFp16:
      return false;
    case DataType::kFp32:
      for (size_t i = 0; i + 4 <= t.data.size(); i += 4) {
        float f;
        std::memcpy(&f, t.data.data() + i, 4);
        if (!std::isfinite(f)) return false;
      }
      return true;
    case DataType::kFp64:
      for (size_t i = 0; i + 8 <= t.data.size(); i += 8) {
        double d;
        std::memcpy(&d, t.data.data() + i, 8);
        if (!std::isfinite(d)) return false;
      }
      return true;
    case DataType::kBytes: {
      auto strings = t.Strings();
      if (!strings.ok()) Fail();  // ParseHttpInfer checked them
      for (const std::string& s : *strings) {
        try {
          (void)Json(s).dump();  // strict: throws on invalid UTF-8
        } catch (const Json::exception&) {
          return false;
        }
      }
      return true;
    }
    case DataType::kBool:
      // Any non-zero byte reads as true, and comes back as 1.
      return t.data.find_first_not_of(std::string_view("\0\1", 2)) == std::string::npos;
    default:
      return true;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view header;
  std::string_view body = input;
  if (size_t nl = input.find('\n'); nl != std::string_view::npos) {
    header = input.substr(0, nl);
    body = input.substr(nl + 1);
  }
  auto req = lumen::models::v2::ParseHttpInfer(body, header);
  if (header.empty()) {
    namespace internal = lumen::models::v2::internal;
    if (auto fast = internal::FastParseHttpInfer(body)) {
      auto slow = internal::ParseHttpInferDocument(body, header);
      if (!slow.ok() || slow->id != fast->id || slow->inputs.size() != fast->inputs.size() ||
          !slow->outputs.empty() || slow->binary_output_default ||
          slow->parameters != fast->parameters) {
        Fail();
      }
      for (size_t i = 0; i < fast->inputs.size(); ++i) {
        const Tensor& a = fast->inputs[i];
        const Tensor& b = slow->inputs[i];
        if (a.name != b.name || a.type != b.type || a.shape != b.shape || a.data != b.data) Fail();
      }
    }
  }
  if (!req.ok()) {
    if (req.status().message().empty()) Fail();
    (void)lumen::models::v2::ErrorJson(std::string(req.status().message()));
    return 0;
  }
  for (const Tensor& t : req->inputs) {
    if (!t.CheckSize().ok()) Fail();  // what it takes, it takes whole
  }

  lumen::models::v2::InferResponse response{"model", "1", req->id, req->inputs};
  size_t header_length = 0;
  std::string answer = lumen::models::v2::EncodeHttpInfer(response, *req, &header_length);
  if (header_length > answer.size()) Fail();
  const size_t json_size = header_length == 0 ? answer.size() : header_length;
  Json j = Json::parse(answer.substr(0, json_size), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j["outputs"].is_array()) Fail();

  // The answer's outputs, read back as a request's inputs.
  std::map<std::string, const Tensor*> sent;
  uint64_t binary_size = 0;
  bool exact = true;
  for (const Json& o : j["outputs"]) {
    auto name = o["name"].get<std::string>();
    const Tensor* t = nullptr;
    for (const Tensor& in : req->inputs) {
      if (in.name == name) t = &in;
    }
    if (t == nullptr || !sent.emplace(name, t).second) Fail();
    if (o.contains("parameters")) {
      binary_size += o["parameters"]["binary_data_size"].get<uint64_t>();
    } else if (!JsonExact(*t)) {
      exact = false;
    }
  }
  if (binary_size != answer.size() - json_size) Fail();
  if (!exact) return 0;

  j["inputs"] = std::move(j["outputs"]);
  j.erase("outputs");
  std::string again_json = j.dump();
  std::string again_header = header_length == 0 ? "" : std::to_string(again_json.size());
  auto again =
      lumen::models::v2::ParseHttpInfer(again_json + answer.substr(json_size), again_header);
  if (!again.ok() || again->inputs.size() != sent.size()) Fail();
  for (const Tensor& t : again->inputs) {
    const Tensor* was = sent.at(t.name);
    if (t.type != was->type || t.shape != was->shape || t.data != was->data) Fail();
  }
  return 0;
}
