// Request splitting and the built-in embedders; see embedder.h.
#include "models/cache/embedder.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <exception>
#include <map>
#include <set>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/file_util.h"
#include "models/v2.h"
#include "proto/grpc_service.pb.h"

namespace lumen::models {
namespace {

using Json = nlohmann::json;

// ---- splitting -------------------------------------------------------------

bool IsV2Infer(const serve::Request& request) {
  return request.path.size() >= 6 &&
         request.path.compare(request.path.size() - 6, 6, "/infer") == 0;
}

// The exact part of a v2 request: everything but its id and the contents
// of its BYTES inputs (only their names and counts), in a fixed order.
std::string V2Exact(const v2::InferRequest& r) {
  Json inputs = Json::array();
  for (const auto& t : r.inputs) {
    Json in = {{"name", t.name}, {"datatype", DataTypeName(t.type)}, {"shape", t.shape}};
    // Non-text tensors compare by content: by digest, which keeps a large
    // tensor out of the namespace's name and, being SHA-256, cannot be
    // made to collide.
    if (t.type != DataType::kBytes) in["sha256"] = Sha256Hex(t.data);
    inputs.push_back(std::move(in));
  }
  Json outputs = Json::array();
  for (const auto& o : r.outputs) outputs.push_back({o.name, o.binary});
  Json j = {{"inputs", std::move(inputs)},
            {"outputs", std::move(outputs)},
            {"binary_output", r.binary_output_default},
            {"parameters", r.parameters}};
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

bool SplitV2(const v2::InferRequest& r, RequestParts* parts) {
  for (const auto& t : r.inputs) {
    if (t.type != DataType::kBytes) continue;
    auto strings = t.Strings();
    if (!strings.ok()) return false;
    for (auto& s : *strings) parts->semantic.push_back(std::move(s));
  }
  parts->exact = V2Exact(r);
  parts->v2_id = r.id;
  return true;
}

bool IsTextField(const std::string& key, const std::vector<std::string>& fields) {
  return std::find(fields.begin(), fields.end(), key) != fields.end();
}

// Moves the JSON's text strings into `semantic` (document order) and
// blanks them in `j`, leaving the exact part.
void SplitJson(Json& j, bool under_text_field, const SplitOptions& options,
               std::vector<std::string>* semantic) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      SplitJson(it.value(),
                under_text_field ||
                    (!options.text_fields.empty() && IsTextField(it.key(), options.text_fields)),
                options, semantic);
    }
  } else if (j.is_array()) {
    for (auto& e : j) SplitJson(e, under_text_field, options, semantic);
  } else if (j.is_string()) {
    const std::string& s = j.get_ref<const std::string&>();
    bool text = options.text_fields.empty()
                    ? (s.size() > 64 || s.find_first_of(" \t\r\n") != std::string::npos)
                    : under_text_field;
    if (text) {
      semantic->push_back(s);
      j = "";
    }
  }
}

// ---- hashing ---------------------------------------------------------------

// FNV-1a with a splitmix64 finish: stable across processes and builds
// (std::hash and absl::Hash are not), so every replica embeds alike.
uint64_t StableHash(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h += 0x9e3779b97f4a7c15ull;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

void AddFeature(std::string_view feature, float weight, std::vector<float>* v) {
  uint64_t h = StableHash(feature);
  // Random signs make colliding features cancel on average instead of
  // piling up into a shared positive component.
  (*v)[h % v->size()] += (h >> 63) != 0 ? weight : -weight;
}

void L2Normalize(std::vector<float>* v) {
  double norm = 0;
  for (float x : *v) norm += static_cast<double>(x) * x;
  if (norm <= 0) return;
  float inv = static_cast<float>(1.0 / std::sqrt(norm));
  for (float& x : *v) x *= inv;
}

// ---- text ------------------------------------------------------------------

// Words that say nothing about which question is asked: articles,
// auxiliaries, pronouns, most prepositions, and the filler people put
// around a question ("hey, quick question: could you please tell me ...").
// "not" and the question words stay: they change the answer.
const std::set<std::string, std::less<>>& StopWords() {
  static const auto* words = new std::set<std::string, std::less<>>{
      "a",     "an",        "the",       "this",    "that",      "these",   "those",    "is",
      "are",   "was",       "were",      "be",      "been",      "being",   "am",       "do",
      "does",  "did",       "doing",     "have",    "has",       "had",     "having",   "i",
      "me",    "my",        "mine",      "myself",  "you",       "your",    "yours",    "we",
      "us",    "our",       "it",        "its",     "he",        "she",     "him",      "her",
      "they",  "them",      "their",     "of",      "to",        "in",      "on",       "at",
      "by",    "for",       "with",      "from",    "into",      "about",   "as",       "and",
      "or",    "so",        "there",     "here",    "can",       "could",   "would",    "should",
      "will",  "shall",     "may",       "might",   "must",      "just",    "please",   "pls",
      "hey",   "hi",        "hello",     "um",      "uh",        "well",    "actually", "really",
      "quick", "question",  "tell",      "know",    "wondering", "wonder",  "kindly",   "need",
      "want",  "help",      "thanks",    "thank",   "ok",        "okay",    "any",      "some",
      "also",  "idea",      "anyone",    "someone", "let",       "explain", "s",        "t",
      "d",     "ll",        "re",        "ve",      "m",         "mean",    "exactly",  "again",
      "now",   "currently", "basically", "curious", "say",       "give",
  };
  return *words;
}

// The question words weigh less than content words: "what is X" and
// "which X is ..." ask the same, and many paraphrases drop them.
bool IsQuestionWord(std::string_view w) {
  return w == "what" || w == "which" || w == "how" || w == "who" || w == "where" || w == "when" ||
         w == "why" || w == "whom" || w == "whose";
}

bool IsVowel(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

// Suffix stripping just strong enough that the forms of a word meet
// ("passwords"/"password", "resetting"/"reset", "cities"/"city"); both
// sides of a comparison go through it, so the stems need not be words.
std::string Stem(std::string w) {
  auto ends = [&](std::string_view s) {
    return w.size() >= s.size() && w.compare(w.size() - s.size(), s.size(), s) == 0;
  };
  auto undouble = [&] {
    size_t n = w.size();
    if (n >= 3 && w[n - 1] == w[n - 2] && !IsVowel(w[n - 1]) && w[n - 1] != 'l' &&
        w[n - 1] != 's' && w[n - 1] != 'z') {
      w.pop_back();
    }
  };
  if (w.size() > 4 && ends("ies")) {
    w.replace(w.size() - 3, 3, "y");
  } else if (w.size() > 4 && (ends("sses") || ends("shes") || ends("ches") || ends("xes"))) {
    w.resize(w.size() - 2);
  } else if (w.size() > 3 && ends("s") && !ends("ss") && !ends("us") && !ends("is")) {
    w.pop_back();
  }
  if (w.size() > 5 && ends("ing")) {
    w.resize(w.size() - 3);
    undouble();
  } else if (w.size() > 4 && ends("ed")) {
    w.resize(w.size() - 2);
    undouble();
  }
  if (w.size() > 3 && ends("e")) w.pop_back();  // "close"/"closing" -> "clos"
  return w;
}

// Contractions, expanded so "what's" and "what is" give the same words.
void ExpandContraction(const std::string& word, std::vector<std::string>* out) {
  static const std::map<std::string, std::vector<std::string>, std::less<>> kWhole = {
      {"won't", {"will", "not"}},   {"can't", {"can", "not"}}, {"cannot", {"can", "not"}},
      {"shan't", {"shall", "not"}}, {"ain't", {"is", "not"}},  {"let's", {"let", "us"}},
  };
  if (auto it = kWhole.find(word); it != kWhole.end()) {
    out->insert(out->end(), it->second.begin(), it->second.end());
    return;
  }
  static const std::pair<std::string_view, std::string_view> kSuffixes[] = {
      {"n't", "not"},  {"'re", "are"},  {"'m", "am"}, {"'ll", "will"},
      {"'ve", "have"}, {"'d", "would"}, {"'s", ""},
  };
  for (const auto& [suffix, expansion] : kSuffixes) {
    if (word.size() > suffix.size() &&
        word.compare(word.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out->push_back(word.substr(0, word.size() - suffix.size()));
      if (!expansion.empty()) out->emplace_back(expansion);
      return;
    }
  }
  out->push_back(word);
}

}  // namespace

namespace {

// A content word and its role: '>' after "to"/"into"/"towards", '<' after
// "from", 0 otherwise. Roles keep "fahrenheit to celsius" apart from
// "celsius to fahrenheit", which the bag of words cannot.
struct Token {
  std::string word;
  char role = 0;
};

std::vector<Token> Tokenize(std::string_view text) {
  // Lower-case ASCII, keep UTF-8 multi-byte sequences as letters, turn the
  // typographic apostrophe (U+2019) into '.
  std::string norm;
  norm.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == 0xE2 && i + 2 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0x80 &&
        static_cast<unsigned char>(text[i + 2]) == 0x99) {
      norm.push_back('\'');
      i += 2;
    } else if (c >= 0x80 || std::isalnum(c) || c == '\'') {
      norm.push_back(static_cast<char>(absl::ascii_tolower(c)));
    } else {
      norm.push_back(' ');
    }
  }
  std::vector<Token> tokens;
  char role = 0;
  size_t i = 0;
  while (i < norm.size()) {
    while (i < norm.size() && norm[i] == ' ') ++i;
    size_t j = i;
    while (j < norm.size() && norm[j] != ' ') ++j;
    std::string w = norm.substr(i, j - i);
    i = j;
    // Quotes used as quotes, not apostrophes.
    while (!w.empty() && w.front() == '\'') w.erase(w.begin());
    while (!w.empty() && w.back() == '\'') w.pop_back();
    if (w.empty()) continue;
    std::vector<std::string> expanded;
    ExpandContraction(w, &expanded);
    for (auto& e : expanded) {
      e.erase(std::remove(e.begin(), e.end(), '\''), e.end());
      if (e == "to" || e == "into" || e == "towards") {
        role = '>';
      } else if (e == "from") {
        role = '<';
      }
      if (e.empty() || StopWords().count(e)) continue;
      if (e == "which" || e == "whom") e = "what";
      tokens.push_back({Stem(std::move(e)), role});
      role = 0;
    }
  }
  return tokens;
}

// Words that most questions of a kind share ("how many", "best way",
// "right now"): they count for less than the words that say which
// question it is, usually its subject.
bool IsGeneric(std::string_view w) {
  // Stems (see Stem): "possible" is "possibl", "like" is "lik".
  static const auto* words = new std::set<std::string, std::less<>>{
      "way",   "best",    "good",    "many",    "much",  "long",    "get",    "use",
      "thing", "one",     "right",   "current", "today", "possibl", "method", "lik",
      "top",   "easiest", "fastest", "quickly", "fast",  "step",
  };
  return words->count(w) > 0;
}

}  // namespace

std::vector<std::string> TextTokens(std::string_view text) {
  std::vector<std::string> words;
  for (auto& t : Tokenize(text)) words.push_back(std::move(t.word));
  return words;
}

std::vector<uint64_t> TextTerms(std::string_view text) {
  std::vector<uint64_t> terms;
  for (const Token& t : Tokenize(text)) {
    terms.push_back(StableHash(absl::StrCat("w:", t.word)));
    if (t.role != 0)
      terms.push_back(StableHash(absl::StrCat("r:", std::string(1, t.role), t.word)));
  }
  return terms;
}

std::vector<float> TextEmbedding(std::string_view text, const TextEmbedderOptions& options) {
  std::vector<float> v(static_cast<size_t>(std::max(options.dim, 1)), 0.0f);
  std::vector<Token> tokens = Tokenize(text);
  if (tokens.empty()) {
    // All stop words ("how are you?"): the words themselves are all there
    // is to compare, so fall back to them rather than to nothing.
    std::string lower = absl::AsciiStrToLower(std::string(text));
    for (size_t i = 0; i < lower.size();) {
      size_t j = lower.find_first_of(" \t\r\n", i);
      if (j == std::string::npos) j = lower.size();
      std::string w;
      for (size_t k = i; k < j; ++k) {
        unsigned char c = static_cast<unsigned char>(lower[k]);
        if (c >= 0x80 || std::isalnum(c)) w.push_back(static_cast<char>(c));
      }
      if (!w.empty()) tokens.push_back({std::move(w), 0});
      i = j + 1;
    }
  }
  std::string feature;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& w = tokens[i].word;
    bool question = IsQuestionWord(w);
    float scale = question ? 0.5f : IsGeneric(w) ? options.generic_weight : 1.0f;
    feature = absl::StrCat("w:", w);
    AddFeature(feature, options.unigram_weight * scale, &v);
    if (tokens[i].role != 0 && options.role_weight > 0) {
      feature = absl::StrCat("r:", std::string(1, tokens[i].role), w);
      AddFeature(feature, options.role_weight * scale, &v);
    }
    if (i + 1 < tokens.size() && options.bigram_weight > 0) {
      feature = absl::StrCat("b:", w, " ", tokens[i + 1].word);
      AddFeature(feature, options.bigram_weight, &v);
    }
    if (options.trigram_weight > 0 && !question) {
      // 3-grams of "#word#": a misspelling or another form of the word
      // keeps most of them.
      std::string padded = absl::StrCat("#", w, "#");
      size_t n = padded.size() - 2;
      float weight = options.trigram_weight * scale / std::sqrt(static_cast<float>(n));
      for (size_t k = 0; k + 3 <= padded.size(); ++k) {
        feature = absl::StrCat("c:", padded.substr(k, 3));
        AddFeature(feature, weight, &v);
      }
    }
  }
  L2Normalize(&v);
  return v;
}

namespace {

class TextEmbedder : public Embedder {
 public:
  explicit TextEmbedder(TextEmbedderOptions options) : options_(options) {}
  absl::StatusOr<std::vector<float>> EmbedParts(const RequestParts& parts) override {
    std::string text = absl::StrJoin(parts.semantic, "\n");
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
      return absl::InvalidArgumentError(
          "text embedder: the request has no text (no string input, no JSON text, empty body)");
    }
    return TextEmbedding(text, options_);
  }
  std::vector<uint64_t> Terms(const RequestParts& parts) override {
    return TextTerms(absl::StrJoin(parts.semantic, "\n"));
  }
  int dim() const override { return options_.dim; }
  float default_threshold() const override { return options_.threshold; }

 private:
  TextEmbedderOptions options_;
};

class ImageEmbedder : public Embedder {
 public:
  explicit ImageEmbedder(float threshold) : threshold_(threshold) {}
  absl::StatusOr<std::vector<float>> EmbedParts(const RequestParts& parts) override {
    if (parts.semantic.empty() || parts.semantic.front().empty()) {
      return absl::InvalidArgumentError(
          "image embedder: the request has no image (send the encoded image as the body or as "
          "the first element of a BYTES input)");
    }
    return ImageEmbedding(parts.semantic.front());
  }
  int dim() const override { return kImageEmbeddingDim; }
  float default_threshold() const override { return threshold_; }

 private:
  float threshold_;
};

}  // namespace

absl::StatusOr<std::vector<float>> ImageEmbedding(std::string_view encoded) {
  try {
    cv::Mat buffer(1, static_cast<int>(encoded.size()), CV_8U,
                   const_cast<char*>(encoded.data()));  // imdecode only reads it
    cv::Mat gray = cv::imdecode(buffer, cv::IMREAD_GRAYSCALE);
    if (gray.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "image embedder: ", encoded.size(),
          " bytes that OpenCV cannot decode as an image; send PNG, JPEG, BMP, WebP or TIFF"));
    }
    std::vector<float> v;
    v.reserve(kImageEmbeddingDim);
    // The thumbnail: INTER_AREA averages whole pixels, so a resized or
    // recompressed copy lands on nearly the same 256 values. Removing the
    // mean makes the comparison a correlation of layouts, not of brightness.
    cv::Mat thumb;
    cv::resize(gray, thumb, cv::Size(16, 16), 0, 0, cv::INTER_AREA);
    thumb.convertTo(thumb, CV_32F);
    double mean = cv::mean(thumb)[0];
    std::vector<float> part(256);
    for (int y = 0; y < 16; ++y) {
      for (int x = 0; x < 16; ++x)
        part[y * 16 + x] = thumb.at<float>(y, x) - static_cast<float>(mean);
    }
    L2Normalize(&part);
    v.insert(v.end(), part.begin(), part.end());
    // The histogram: the tone distribution, which layout misses (two
    // layouts of the same scene in different exposure). Square roots
    // (Hellinger) keep one dominant bin from deciding the cosine; the mean
    // is removed for the same reason as above.
    std::vector<float> hist(32, 0.0f);
    for (int y = 0; y < gray.rows; ++y) {
      const uint8_t* row = gray.ptr<uint8_t>(y);
      for (int x = 0; x < gray.cols; ++x) hist[row[x] / 8] += 1.0f;
    }
    float total = static_cast<float>(gray.total());
    float hmean = 0;
    for (float& h : hist) {
      h = std::sqrt(h / total);
      hmean += h / 32;
    }
    for (float& h : hist) h -= hmean;
    L2Normalize(&hist);
    constexpr float kHistogramWeight = 0.5f;  // layout decides; tones confirm
    for (float h : hist) v.push_back(h * kHistogramWeight);
    L2Normalize(&v);
    return v;
  } catch (const cv::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("image embedder: OpenCV failed on the image: ", e.what()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("image embedder: ", e.what()));
  }
}

std::unique_ptr<Embedder> MakeTextEmbedder(const TextEmbedderOptions& options) {
  return std::make_unique<TextEmbedder>(options);
}

std::unique_ptr<Embedder> MakeImageEmbedder(float threshold) {
  return std::make_unique<ImageEmbedder>(threshold);
}

// ---- model:NAME --------------------------------------------------------------

serve::Request ModelEmbedRequest(const ModelEmbedderOptions& options, const std::string& text) {
  serve::Request r;
  r.method = "POST";
  r.path = "/v2/models/" + options.model + "/infer";
  r.headers["content-type"] = "application/json";
  Json body = {{"inputs", Json::array({{{"name", options.input},
                                        {"datatype", "BYTES"},
                                        {"shape", {1}},
                                        {"data", Json::array({text})}}})}};
  if (!options.output.empty()) body["outputs"] = Json::array({{{"name", options.output}}});
  r.body = body.dump(-1, ' ', false, Json::error_handler_t::replace);
  return r;
}

namespace {

void Flatten(const Json& j, std::vector<float>* out, bool* ok) {
  if (j.is_array()) {
    for (const auto& e : j) Flatten(e, out, ok);
  } else if (j.is_number()) {
    out->push_back(j.get<float>());
  } else {
    *ok = false;
  }
}

}  // namespace

absl::StatusOr<std::vector<float>> ParseModelEmbedResponse(const ModelEmbedderOptions& options,
                                                           const serve::Response& response) {
  std::string who = "embedding model '" + options.model + "'";
  if (response.status != 200) {
    std::string body = response.body.substr(0, 300);
    return absl::UnavailableError(absl::StrCat(who, " answered ", response.status, ": ", body));
  }
  if (response.headers.count("inference-header-content-length") != 0) {
    return absl::InvalidArgumentError(who + " answered in the binary form; it was asked for JSON");
  }
  Json j = Json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("outputs") || !j["outputs"].is_array()) {
    return absl::InvalidArgumentError(who + " answered without an 'outputs' array");
  }
  for (const auto& out : j["outputs"]) {
    if (!out.is_object()) continue;
    std::string name = out.value("name", "");
    std::string type = out.value("datatype", "");
    if (!options.output.empty() ? name != options.output : type != "FP32") continue;
    if (type != "FP32") {
      return absl::InvalidArgumentError(absl::StrCat(who, "'s output '", name, "' is ", type,
                                                     "; the cache needs an FP32 vector"));
    }
    std::vector<float> v;
    bool ok = true;
    if (out.contains("data")) Flatten(out["data"], &v, &ok);
    if (!ok || v.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(who, "'s output '", name, "' has no numbers in 'data'"));
    }
    if (options.dim > 0 && v.size() != static_cast<size_t>(options.dim)) {
      return absl::InvalidArgumentError(absl::StrCat(who, " gave ", v.size(), " floats where ",
                                                     options.dim, " were configured (\"dim\")"));
    }
    return v;
  }
  return absl::InvalidArgumentError(
      options.output.empty()
          ? who + " answered no FP32 output; name the vector output with \"embedder_output\""
          : who + " answered no output '" + options.output + "'");
}

namespace {

class ModelEmbedder : public Embedder {
 public:
  explicit ModelEmbedder(ModelEmbedderOptions options) : options_(std::move(options)) {
    if (options_.deployment.empty()) options_.deployment = options_.model;
    if (!options_.call) {
      serve::DeploymentHandle handle(serve::CurrentReplica().app, options_.deployment);
      double timeout_s = options_.timeout_s;
      std::string model = options_.model;
      options_.call = [handle, timeout_s,
                       model](serve::Request r) -> absl::StatusOr<serve::Response> {
        auto future = handle.Remote(std::move(r));
        if (future.wait_for(std::chrono::duration<double>(timeout_s)) !=
            std::future_status::ready) {
          return absl::DeadlineExceededError(
              absl::StrCat("embedding model '", model, "' did not answer in ", timeout_s,
                           " s; raise \"embedder_timeout_s\" or give it more replicas"));
        }
        return future.get();
      };
    }
    dim_ = options_.dim;
  }

  absl::StatusOr<std::vector<float>> EmbedParts(const RequestParts& parts) override {
    std::string text = absl::StrJoin(parts.semantic, "\n");
    if (text.empty()) {
      return absl::InvalidArgumentError("model embedder: the request has no text to embed");
    }
    absl::StatusOr<serve::Response> answer = options_.call(ModelEmbedRequest(options_, text));
    if (!answer.ok()) return answer.status();
    auto v = ParseModelEmbedResponse(options_, *answer);
    if (!v.ok()) return v.status();
    absl::MutexLock lock(&mu_);
    if (dim_ == 0) dim_ = static_cast<int>(v->size());
    if (v->size() != static_cast<size_t>(dim_)) {
      return absl::InvalidArgumentError(absl::StrCat("embedding model '", options_.model, "' gave ",
                                                     v->size(), " floats after giving ", dim_,
                                                     "; its output must have a fixed length"));
    }
    return v;
  }
  int dim() const override {
    absl::MutexLock lock(&mu_);
    return dim_;
  }
  float default_threshold() const override { return options_.threshold; }

 private:
  ModelEmbedderOptions options_;
  mutable absl::Mutex mu_;
  int dim_ ABSL_GUARDED_BY(mu_) = 0;
};

// ---- registry ------------------------------------------------------------------

struct Registry {
  absl::Mutex mu;
  std::map<std::string, EmbedderFactory> factories ABSL_GUARDED_BY(mu);
};

Registry& GetRegistry() {
  static Registry* r = [] {
    auto* r = new Registry;
    absl::MutexLock lock(&r->mu);
    r->factories["text"] = [](std::string_view arg,
                              const Json& init_args) -> absl::StatusOr<std::unique_ptr<Embedder>> {
      if (!arg.empty()) {
        return absl::InvalidArgumentError("the text embedder takes no argument: use \"text\"");
      }
      return MakeTextEmbedder();
    };
    r->factories["image"] = [](std::string_view arg,
                               const Json& init_args) -> absl::StatusOr<std::unique_ptr<Embedder>> {
      if (!arg.empty()) {
        return absl::InvalidArgumentError("the image embedder takes no argument: use \"image\"");
      }
      return MakeImageEmbedder();
    };
    r->factories["model"] = [](std::string_view arg,
                               const Json& init_args) -> absl::StatusOr<std::unique_ptr<Embedder>> {
      ModelEmbedderOptions o;
      size_t slash = arg.find('/');
      if (slash == std::string_view::npos) {
        o.model = std::string(arg);
      } else {
        o.deployment = std::string(arg.substr(0, slash));
        o.model = std::string(arg.substr(slash + 1));
      }
      if (o.model.empty() || (slash != std::string_view::npos && o.deployment.empty())) {
        return absl::InvalidArgumentError(
            "embedder \"model:\" needs a model: \"model:NAME\", or \"model:GROUP/NAME\" for a "
            "model in a multiplexed group");
      }
      try {
        if (init_args.is_object()) {
          o.input = init_args.value("embedder_input", o.input);
          o.output = init_args.value("embedder_output", o.output);
          o.dim = init_args.value("embedder_dim", o.dim);
          o.timeout_s = init_args.value("embedder_timeout_s", o.timeout_s);
        }
      } catch (const std::exception& e) {
        return absl::InvalidArgumentError(
            absl::StrCat("the model embedder's init_args (embedder_input, embedder_output: "
                         "strings; embedder_dim, embedder_timeout_s: numbers): ",
                         e.what()));
      }
      if (o.dim < 0 || !(o.timeout_s > 0)) {
        return absl::InvalidArgumentError("embedder_dim must be >= 0 and embedder_timeout_s > 0");
      }
      return MakeModelEmbedder(std::move(o));
    };
    return r;
  }();
  return *r;
}

}  // namespace

std::unique_ptr<Embedder> MakeModelEmbedder(ModelEmbedderOptions options) {
  return std::make_unique<ModelEmbedder>(std::move(options));
}

absl::StatusOr<std::vector<float>> Embedder::Embed(const serve::Request& request) {
  return EmbedParts(SplitRequest(request));
}

void RegisterEmbedder(const std::string& kind, EmbedderFactory factory) {
  Registry& r = GetRegistry();
  absl::MutexLock lock(&r.mu);
  r.factories[kind] = std::move(factory);
}

absl::StatusOr<std::unique_ptr<Embedder>> MakeEmbedder(std::string_view spec,
                                                       const Json& init_args) {
  size_t colon = spec.find(':');
  std::string kind(spec.substr(0, colon));
  std::string_view arg = colon == std::string_view::npos ? "" : spec.substr(colon + 1);
  EmbedderFactory factory;
  std::string known;
  {
    Registry& r = GetRegistry();
    absl::MutexLock lock(&r.mu);
    auto it = r.factories.find(kind);
    if (it != r.factories.end()) factory = it->second;
    for (const auto& [k, f] : r.factories) absl::StrAppend(&known, known.empty() ? "" : ", ", k);
  }
  if (!factory) {
    return absl::InvalidArgumentError(absl::StrCat("no embedder \"", std::string(spec),
                                                   "\"; the kinds are ", known,
                                                   " (\"model:NAME\" for a model)"));
  }
  return factory(arg, init_args);
}

RequestParts SplitRequest(const serve::Request& request, const SplitOptions& options) {
  RequestParts parts;
  if (request.Header("x-lumen-v2") == "grpc") {
    inference::ModelInferRequest message;
    if (message.ParseFromString(request.body)) {
      auto r = v2::FromGrpc(message);
      if (r.ok() && SplitV2(*r, &parts)) {
        parts.kind = RequestParts::Kind::kV2Grpc;
        return parts;
      }
    }
    parts = RequestParts{};
  } else if (IsV2Infer(request)) {
    auto r = v2::ParseHttpInfer(request.body, request.Header("inference-header-content-length"));
    if (r.ok() && SplitV2(*r, &parts)) {
      parts.kind = RequestParts::Kind::kV2Http;
      return parts;
    }
    parts = RequestParts{};
  }
  size_t first = request.body.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && (request.body[first] == '{' || request.body[first] == '[')) {
    Json j = Json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded()) {
      SplitJson(j, false, options, &parts.semantic);
      parts.kind = RequestParts::Kind::kJson;
      parts.exact = j.dump(-1, ' ', false, Json::error_handler_t::replace);
      return parts;
    }
  }
  if (!request.body.empty()) parts.semantic.push_back(request.body);
  // The body's type decides how the target reads it.
  parts.exact = request.Header("content-type");
  return parts;
}

}  // namespace lumen::models
