// The KServe v2 / Open Inference Protocol codec: inference requests and
// responses as they arrive over HTTP (JSON, with Triton's binary tensor
// extension) and gRPC (proto/grpc_service.proto), to and from lumen's
// tensors (lumen/tensor.h). Everything here is a pure function of its
// arguments; the HTTP and gRPC routes and the model lookup live elsewhere.
//
// Requests are untrusted: every parser answers INVALID_ARGUMENT with a
// message naming the offending input instead of throwing, and never
// allocates more than the request's own size allows (a shape of [1e18]
// is refused before anything is allocated for it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "lumen/tensor.h"
#include "nlohmann/json.hpp"

// proto/grpc_service.proto; declared, not included, so that the HTTP codec
// (v2.cc) builds without the generated code (the fuzz targets do).
namespace inference {
class ModelInferRequest;
class ModelInferResponse;
}  // namespace inference

namespace lumen::models::v2 {

struct RequestedOutput {
  std::string name;
  // Whether to send it in the binary extension's form (raw bytes after the
  // JSON) rather than as JSON data. HTTP only.
  bool binary = false;
};

struct InferRequest {
  // From the URL (HTTP) or the message (gRPC); ParseHttpInfer leaves them
  // empty. An empty version: the one the model's version policy picks.
  std::string model, version, id;
  std::vector<Tensor> inputs;
  std::vector<RequestedOutput> outputs;  // empty: all outputs
  bool binary_output_default = false;    // request parameters.binary_data_output
  // The request's "parameters" object as sent (gRPC: each InferParameter as
  // its JSON value).
  nlohmann::json parameters = nlohmann::json::object();
};

struct InferResponse {
  std::string model, version, id;
  // Expected to pass Tensor::CheckSize(); one that does not is written
  // with the elements its data holds, never reading past it.
  std::vector<Tensor> outputs;
};

// The body of POST /v2/models/M[/versions/V]/infer. `header_length` is the
// Inference-Header-Content-Length header's value ("" when absent): the
// JSON part's length, raw tensor bytes following it. JSON data may be flat
// or nested arrays (row-major); FP16 only travels in binary form. Checks
// everything the v2 protocol lets a client get wrong (JSON syntax and
// depth, missing or mistyped fields, datatypes, dims, element counts and
// ranges, binary sizes, leftover bytes) and answers INVALID_ARGUMENT for
// it. Never throws.
absl::StatusOr<InferRequest> ParseHttpInfer(std::string_view body, std::string_view header_length);

// The HTTP answer's body to `asked`: only the outputs it names, when it
// names any. Outputs that `asked` wants binary (the output's
// parameters.binary_data, else binary_data_output) follow the JSON as raw
// bytes; then *header_length is the JSON part's length, which the caller
// sends as Inference-Header-Content-Length with content-type
// application/octet-stream. Else it is 0 and the body is plain JSON.
// JSON cannot hold everything a tensor can: FP16 is written as numbers,
// NaN and infinities as null, and BYTES that are not UTF-8 with U+FFFD in
// place of the bad bytes; clients that need them exact ask for binary.
std::string EncodeHttpInfer(const InferResponse& response, const InferRequest& asked,
                            size_t* header_length);

// A gRPC ModelInfer request: raw_input_contents when present (one per
// input, in order), else each input's typed contents; the same checks as
// ParseHttpInfer. Defined in v2_grpc.cc (needs the generated code).
absl::StatusOr<InferRequest> FromGrpc(const inference::ModelInferRequest& request);

// Outputs go into raw_output_contents, which is what tritonclient reads.
void ToGrpc(const InferResponse& response, inference::ModelInferResponse* out);

// {"error": message}, the v2 protocol's error body.
std::string ErrorJson(std::string_view message);

// Shared by the HTTP and gRPC codecs; not part of the protocol.
namespace internal {

// The number of elements `shape` gives input `name`: INVALID_ARGUMENT for a
// negative dim or a count above `max_elements` (what the request could
// possibly carry, which also keeps the product from overflowing).
absl::StatusOr<int64_t> ElementCount(std::string_view name, const std::vector<int64_t>& shape,
                                     uint64_t max_elements);

// OK when `input.data` holds what its type and shape say (BYTES: whole
// elements, as many as the shape needs); the message names the input.
absl::Status CheckData(const Tensor& input);

// INVALID_ARGUMENT when two inputs share a name.
absl::Status CheckUniqueNames(const std::vector<Tensor>& inputs);

// ParseHttpInfer's two ways for a body without binary parts: the fast path
// (the usual request, straight into the tensors; nullopt for anything
// else, errors included) and the JSON document path (everything, with the
// error). Where the fast path answers, the two agree (fuzz_v2_infer).
std::optional<InferRequest> FastParseHttpInfer(std::string_view body);
absl::StatusOr<InferRequest> ParseHttpInferDocument(std::string_view body,
                                                    std::string_view header_length);

}  // namespace internal
}  // namespace lumen::models::v2
