// The model repository; see repository.h.
#include "models/repository.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/text_format.h"
#include "lumen/tensor.h"

namespace lumen::models {
namespace {

namespace fs = std::filesystem;

// Collects the parser's errors, and its warnings about fields the message
// does not have (skipped with AllowUnknownField) as unsupported fields.
class Collector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (error.empty()) error = absl::StrCat(line + 1, ":", column + 1, ": ", message);
  }
  void AddWarning(int line, int column, const std::string& message) override {
    // "Message type \"lumen.models.config.ModelConfig\" has no field named \"optimization\"."
    auto at = message.find("has no field named \"");
    if (at == std::string::npos) return;
    std::string field = message.substr(at + 20);
    field = field.substr(0, field.find('"'));
    std::string type = message.substr(0, at);
    if (auto dot = type.rfind('.'); dot != std::string::npos) type = type.substr(dot + 1);
    type.erase(std::remove(type.begin(), type.end(), '"'), type.end());
    while (!type.empty() && type.back() == ' ') type.pop_back();
    std::string where = type == "ModelConfig" ? field : type + "." + field;
    unsupported.push_back(absl::StrCat(where, " (line ", line + 1, ")"));
  }
  std::string error;
  std::vector<std::string> unsupported;
};

// Top-level fields that config::ModelConfig does not have, blanked out of
// `text` (spaces, newlines kept so line numbers stay) and named in
// `unsupported`. protobuf's own skipping of unknown fields cannot skip every
// form Triton's configs use (a list of messages without a colon), so the
// top level is skipped here, by tokens; unknown fields nested in known ones
// are still skipped by the parser (AllowUnknownField).
void BlankUnknownTopLevelFields(std::string* text, std::vector<std::string>* unsupported) {
  namespace io = google::protobuf::io;
  std::vector<size_t> line_start = {0};
  for (size_t i = 0; i < text->size(); ++i) {
    if ((*text)[i] == '\n') line_start.push_back(i + 1);
  }
  auto offset = [&](const io::Tokenizer::Token& t) {
    return line_start[static_cast<size_t>(t.line)] + static_cast<size_t>(t.column);
  };
  io::ArrayInputStream input(text->data(), static_cast<int>(text->size()));
  class Quiet : public io::ErrorCollector {
   public:
    void AddError(int, int, const std::string&) override {}
  } quiet;
  io::Tokenizer tok(&input, &quiet);
  const auto* descriptor = config::ModelConfig::descriptor();
  std::vector<std::pair<size_t, size_t>> cut;
  tok.Next();
  while (tok.current().type != io::Tokenizer::TYPE_END) {
    if (tok.current().type != io::Tokenizer::TYPE_IDENTIFIER) {
      tok.Next();  // not where a field starts: leave it to the parser
      continue;
    }
    io::Tokenizer::Token name = tok.current();
    bool known = descriptor->FindFieldByName(name.text) != nullptr;
    tok.Next();
    if (tok.current().text == ":") tok.Next();
    int depth = 0;
    do {
      const std::string& t = tok.current().text;
      if (tok.current().type == io::Tokenizer::TYPE_SYMBOL) {
        if (t == "{" || t == "[" || t == "<") ++depth;
        if (t == "}" || t == "]" || t == ">") --depth;
        if (t == "-") {  // a negative number: the sign and the number
          tok.Next();
          continue;
        }
      }
      tok.Next();
      // Adjacent strings are one value.
      while (depth == 0 && tok.current().type == io::Tokenizer::TYPE_STRING &&
             tok.previous().type == io::Tokenizer::TYPE_STRING) {
        tok.Next();
      }
    } while (depth > 0 && tok.current().type != io::Tokenizer::TYPE_END);
    if (tok.current().text == ";" || tok.current().text == ",") tok.Next();
    if (!known) {
      size_t end =
          tok.current().type == io::Tokenizer::TYPE_END ? text->size() : offset(tok.current());
      cut.emplace_back(offset(name), end);
      unsupported->push_back(absl::StrCat(name.text, " (line ", name.line + 1, ")"));
    }
  }
  for (const auto& [from, to] : cut) {
    for (size_t i = from; i < to && i < text->size(); ++i) {
      if ((*text)[i] != '\n') (*text)[i] = ' ';
    }
  }
}

absl::Status Bad(const std::string& file, const std::string& what) {
  return absl::InvalidArgumentError(file + ": " + what);
}

template <typename List>
absl::Status CheckTensors(const List& list, const char* kind, const std::string& file) {
  std::set<std::string> names;
  for (const auto& t : list) {
    if (t.name().empty()) return Bad(file, absl::StrCat("an ", kind, " has no name"));
    if (!names.insert(t.name()).second) {
      return Bad(file, absl::StrCat(kind, " '", t.name(), "' is declared twice"));
    }
    if (t.data_type() == config::TYPE_INVALID || t.data_type() == config::TYPE_BF16) {
      return Bad(file, absl::StrCat(kind, " '", t.name(), "' needs a data_type lumen supports (",
                                    "TYPE_FP32, TYPE_INT64, TYPE_STRING, ...)"));
    }
    for (int64_t d : t.dims()) {
      if (d < -1 || d == 0) {
        return Bad(file, absl::StrCat(kind, " '", t.name(), "' has dimension ", d,
                                      ": use a positive size or -1 for any"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<config::ModelConfig> ParseModelConfig(std::string_view text, const std::string& file,
                                                     const std::string& model,
                                                     std::vector<std::string>* unsupported) {
  config::ModelConfig c;
  google::protobuf::TextFormat::Parser parser;
  Collector errors;
  parser.RecordErrorsTo(&errors);
  parser.AllowUnknownField(true);
  std::string known(text);
  std::vector<std::string> skipped;
  BlankUnknownTopLevelFields(&known, &skipped);
  if (!parser.ParseFromString(known, &c)) {
    return absl::InvalidArgumentError(file + ":" +
                                      (errors.error.empty() ? " does not parse" : errors.error));
  }
  skipped.insert(skipped.end(), errors.unsupported.begin(), errors.unsupported.end());
  if (unsupported) *unsupported = std::move(skipped);
  if (c.name().empty()) c.set_name(model);
  if (!model.empty() && c.name() != model) {
    return Bad(file, "name is '" + c.name() + "' but the model's folder is '" + model +
                         "': make them the same");
  }
  if (c.max_batch_size() < 0) {
    return Bad(file, absl::StrCat("max_batch_size is ", c.max_batch_size(),
                                  ": use 0 (no batching) or the largest batch"));
  }
  if (auto s = CheckTensors(c.input(), "input", file); !s.ok()) return s;
  if (auto s = CheckTensors(c.output(), "output", file); !s.ok()) return s;
  for (int p : c.dynamic_batching().preferred_batch_size()) {
    if (p <= 0 || p > c.max_batch_size()) {
      return Bad(file, absl::StrCat("dynamic_batching.preferred_batch_size ", p,
                                    " is not within 1..max_batch_size (", c.max_batch_size(), ")"));
    }
  }
  if (c.has_dynamic_batching() && c.max_batch_size() == 0) {
    return Bad(file, "dynamic_batching needs max_batch_size > 0");
  }
  for (const auto& g : c.instance_group()) {
    if (g.count() < 0) return Bad(file, absl::StrCat("instance_group count ", g.count(), " < 0"));
  }
  if (c.version_policy().has_specific() && c.version_policy().specific().versions().empty()) {
    return Bad(file, "version_policy.specific lists no versions");
  }
  return c;
}

std::vector<int64_t> SelectVersions(const config::ModelConfig& config,
                                    std::vector<int64_t> available) {
  std::sort(available.begin(), available.end());
  const auto& policy = config.version_policy();
  if (policy.has_all()) return available;
  if (policy.has_specific()) {
    std::vector<int64_t> out;
    for (int64_t v : policy.specific().versions()) {
      if (std::binary_search(available.begin(), available.end(), v)) out.push_back(v);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }
  size_t n = policy.has_latest() ? std::max<uint32_t>(1, policy.latest().num_versions()) : 1;
  if (available.size() > n) available.erase(available.begin(), available.end() - n);
  return available;
}

absl::StatusOr<std::vector<std::string>> ListModels(const std::string& repo) {
  std::error_code ec;
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(repo, ec)) {
    if (e.is_directory() && FileExists((e.path() / "config.pbtxt").string())) {
      out.push_back(e.path().filename().string());
    }
  }
  if (ec)
    return absl::NotFoundError("cannot read the model repository " + repo + ": " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<RepoModel> ReadModel(const std::string& repo, const std::string& model,
                                    bool with_digests) {
  fs::path dir = fs::path(repo) / model;
  std::string file = (dir / "config.pbtxt").string();
  auto text = ReadFile(file);
  if (!text.ok()) {
    return absl::NotFoundError("model '" + model + "': no " + file +
                               " (a model is a folder with config.pbtxt and version folders)");
  }
  RepoModel m;
  m.name = model;
  m.config_text = *text;
  auto config = ParseModelConfig(*text, file, model, &m.unsupported);
  if (!config.ok()) return config.status();
  m.config = *config;
  std::error_code ec;
  std::vector<fs::path> shared;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    int64_t v;
    std::string name = e.path().filename().string();
    if (e.is_directory() && absl::SimpleAtoi(name, &v) && v > 0) {
      m.available.push_back(v);
    } else if (e.is_regular_file() && name != "config.pbtxt") {
      shared.push_back(e.path());
    }
  }
  m.versions = SelectVersions(m.config, m.available);
  if (m.versions.empty()) {
    return absl::InvalidArgumentError("model '" + model + "': no version to serve (found " +
                                      (m.available.empty()
                                           ? std::string("no numeric version folder")
                                           : "versions " + absl::StrJoin(m.available, ", ")) +
                                      "; version_policy picks none)");
  }
  auto add = [&](const fs::path& p) -> absl::Status {
    ModelFile f;
    f.path = fs::relative(p, dir).generic_string();
    f.size = static_cast<int64_t>(fs::file_size(p, ec));
    if (with_digests) {
      auto bytes = ReadFile(p.string());
      if (!bytes.ok()) return bytes.status();
      f.digest = Sha256Hex(*bytes);
    }
    m.files.push_back(std::move(f));
    return absl::OkStatus();
  };
  if (auto s = add(dir / "config.pbtxt"); !s.ok()) return s;
  std::sort(shared.begin(), shared.end());
  for (const auto& p : shared) {
    if (auto s = add(p); !s.ok()) return s;
  }
  for (int64_t v : m.versions) {
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(dir / std::to_string(v), ec)) {
      if (e.is_regular_file()) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& p : files) {
      if (auto s = add(p); !s.ok()) return s;
    }
  }
  return m;
}

nlohmann::json ModelToJson(const RepoModel& model) {
  nlohmann::json files = nlohmann::json::array();
  for (const auto& f : model.files) {
    files.push_back({{"path", f.path}, {"digest", f.digest}, {"size", f.size}});
  }
  return {{"name", model.name},
          {"config", model.config_text},
          {"versions", model.versions},
          {"unsupported", model.unsupported},
          {"files", files}};
}

absl::StatusOr<RepoModel> ModelFromJson(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string() || !j.contains("config") ||
      !j["config"].is_string() || !j.contains("files") || !j["files"].is_array()) {
    return absl::InvalidArgumentError("a model needs {name, config, versions, files}");
  }
  RepoModel m;
  m.name = j["name"].get<std::string>();
  m.config_text = j["config"].get<std::string>();
  auto config = ParseModelConfig(m.config_text, m.name + "/config.pbtxt", m.name, &m.unsupported);
  if (!config.ok()) return config.status();
  m.config = *config;
  for (const auto& v : j.value("versions", nlohmann::json::array())) {
    if (!v.is_number_integer()) return absl::InvalidArgumentError("a version is not a number");
    m.versions.push_back(v.get<int64_t>());
  }
  for (const auto& f : j["files"]) {
    if (!f.is_object() || !f.contains("path") || !f["path"].is_string() || !f.contains("digest") ||
        !f["digest"].is_string()) {
      return absl::InvalidArgumentError("model '" + m.name + "': a file needs {path, digest}");
    }
    ModelFile mf{f["path"].get<std::string>(), f["digest"].get<std::string>(),
                 f.value("size", int64_t{0})};
    // Paths stay inside the model's folder wherever it is unpacked.
    fs::path p(mf.path);
    bool inside = !mf.path.empty() && p.is_relative();
    for (const auto& part : p) inside = inside && part != ".." && part != ".";
    if (!inside) {
      return absl::InvalidArgumentError("model '" + m.name + "': file path '" + mf.path +
                                        "' leaves the model's folder");
    }
    m.files.push_back(std::move(mf));
  }
  return m;
}

}  // namespace lumen::models
