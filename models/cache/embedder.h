// Embedders: requests to vectors for the semantic cache (semantic_cache.h).
//
// A request is first split (SplitRequest) into what is compared by meaning
// (its texts, or an image) and what must match exactly (everything else:
// numeric inputs, requested outputs, parameters, a JSON body's numbers and
// identifiers). The cache puts the exact part into the namespace, so
// "temperature": 0.2 and "temperature": 0.9 never share an answer however
// alike their prompts are; the embedder sees only the semantic part.
//
// Embedders are registered by kind; a spec names one: "text", "image", or
// "KIND:ARG" ("model:NAME" calls a model of the application).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "lumen/serve.h"

namespace lumen::models {

// A request as the cache sees it.
struct RequestParts {
  enum class Kind { kRaw, kJson, kV2Http, kV2Grpc };
  Kind kind = Kind::kRaw;
  // Compared by meaning: a v2 request's BYTES elements, a JSON body's text
  // strings in document order, or the raw body.
  std::vector<std::string> semantic;
  // Compared byte for byte: a canonical form of the rest of the request.
  std::string exact;
  // A v2 request's id, which the answer must echo (a cached answer carries
  // the id of the request that produced it).
  std::string v2_id;
};

struct SplitOptions {
  // For JSON bodies: the keys whose string values are the text to compare
  // (any depth), everything else exact. Empty: every string that contains
  // whitespace or is longer than 64 bytes is text, shorter single tokens
  // ("gpt-4", "user", "json") are identifiers and exact.
  std::vector<std::string> text_fields;
};

// v2 infer bodies (HTTP JSON/binary, or gRPC when x-lumen-v2 is "grpc"),
// JSON bodies, else the raw body. Never fails: a body that does not parse
// as what it claims is taken raw (the target will refuse it, and refusals
// are not stored).
RequestParts SplitRequest(const serve::Request& request, const SplitOptions& options = {});

class Embedder {
 public:
  virtual ~Embedder() = default;
  // SplitRequest with default options, then EmbedParts.
  virtual absl::StatusOr<std::vector<float>> Embed(const serve::Request& request);
  // The vector for `parts.semantic`. INVALID_ARGUMENT when there is
  // nothing to embed (the cache then passes the request through).
  virtual absl::StatusOr<std::vector<float>> EmbedParts(const RequestParts& parts) = 0;
  // The request's terms for the cache's rescoring (semantic_cache.h): hashed
  // words whose overlap, weighted by how rare they are among the stored
  // requests, tells templated requests apart. Empty: vectors only.
  virtual std::vector<uint64_t> Terms(const RequestParts& parts) { return {}; }
  // The vectors' length; 0 while unknown (a model's, until its first answer).
  virtual int dim() const = 0;
  // The similarity threshold this embedder's vectors were tuned for.
  virtual float default_threshold() const { return 0.92f; }
};

// `arg` is what follows "KIND:" in the spec ("" for none); `init_args` the
// cache deployment's, for options an embedder takes.
using EmbedderFactory = std::function<absl::StatusOr<std::unique_ptr<Embedder>>(
    std::string_view arg, const nlohmann::json& init_args)>;
// Later registrations of a kind replace earlier ones.
void RegisterEmbedder(const std::string& kind, EmbedderFactory factory);
// "text", "image", "model:NAME", or a registered "KIND[:ARG]";
// INVALID_ARGUMENT naming the kinds there are for anything else.
absl::StatusOr<std::unique_ptr<Embedder>> MakeEmbedder(std::string_view spec,
                                                       const nlohmann::json& init_args = {});

// ---- text ----------------------------------------------------------------
//
// A deterministic embedding that needs no model: lower-cased words with
// contractions expanded, stop words and filler dropped, lightly stemmed;
// then word unigrams, word bigrams and each word's character 3-grams
// feature-hashed with random signs into `dim` floats, L2-normalized.
// Paraphrases that reorder, re-punctuate, contract or pad a question keep
// most features; questions that differ in a content word lose that word's
// unigram, bigrams and 3-grams at once. It does not know synonyms. Its
// terms (the content words) let the cache weigh words by rarity.
struct TextEmbedderOptions {
  int dim = 512;
  float unigram_weight = 1.0f;
  float bigram_weight = 0.3f;
  // Per word, spread over its 3-grams (a long word weighs no more than a
  // short one).
  float trigram_weight = 1.0f;
  // A word after "to"/"into" or "from" also counts with its direction.
  float role_weight = 0.5f;
  // Words common to whole kinds of questions ("way", "best", "many").
  float generic_weight = 0.5f;
  // What default_threshold() answers: tuned with bench/cache_bench on
  // paraphrased templated questions (about 63% of requests hit, no false
  // hits; 0.75 hits ~66% with ~0.5% false), with the cache's default
  // term_weight.
  float threshold = 0.78f;
};
// The content words of `text`, after normalization (for tests and tuning).
std::vector<std::string> TextTokens(std::string_view text);
std::vector<float> TextEmbedding(std::string_view text, const TextEmbedderOptions& options = {});
// Its terms: each content word, and each word with its direction.
std::vector<uint64_t> TextTerms(std::string_view text);
std::unique_ptr<Embedder> MakeTextEmbedder(const TextEmbedderOptions& options = {});

// ---- image ---------------------------------------------------------------
//
// An encoded image (anything OpenCV decodes) as a 16x16 grayscale thumbnail
// with its mean removed, plus a 32-bin intensity histogram: 288 floats,
// L2-normalized. Re-encoding, mild compression and resizing barely move
// it; a different picture does. Takes the first semantic part.
constexpr int kImageEmbeddingDim = 16 * 16 + 32;
absl::StatusOr<std::vector<float>> ImageEmbedding(std::string_view encoded);
std::unique_ptr<Embedder> MakeImageEmbedder(float threshold = 0.95f);

// ---- model:NAME ----------------------------------------------------------
//
// Calls a model of the application over KServe v2: the semantic parts
// joined by newlines as a BYTES input (shape [1]), the answer's FP32
// output as the vector.
using ModelCall = std::function<absl::StatusOr<serve::Response>(serve::Request)>;
struct ModelEmbedderOptions {
  std::string model;       // the model's name in the repository
  std::string deployment;  // its deployment ("" = the model's name; a multiplexed group's name)
  std::string input = "TEXT";
  std::string output;  // "" = the first FP32 output
  int dim = 0;         // 0: taken from the first answer
  float threshold = 0.92f;
  double timeout_s = 30;
  // How to reach it; default: DeploymentHandle(this replica's app, deployment).
  ModelCall call;
};
std::unique_ptr<Embedder> MakeModelEmbedder(ModelEmbedderOptions options);
// The v2 infer request ModelEmbedder sends for `text` (for tests).
serve::Request ModelEmbedRequest(const ModelEmbedderOptions& options, const std::string& text);
// The FP32 vector in a v2 infer answer's body (JSON form).
absl::StatusOr<std::vector<float>> ParseModelEmbedResponse(const ModelEmbedderOptions& options,
                                                           const serve::Response& response);

}  // namespace lumen::models
