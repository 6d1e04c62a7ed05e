// Serve config parsing; see config.h.
#include "serve/config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "serve/router.h"
#include "yaml-cpp/yaml.h"

namespace lumen::serve {
namespace {

// Bounds on what a config may ask of the parser (it comes from outside:
// the admin API parses what deployers send).
constexpr size_t kMaxConfigBytes = 1 << 20;
constexpr int kMaxDepth = 64;
constexpr int kMaxAliases = 64;
constexpr size_t kMaxExpandedNodes = 100'000;
constexpr double kMaxSeconds = 86'400;

// Thrown inside the parser only; becomes INVALID_ARGUMENT at its edge.
struct ConfigError {
  std::string message;
};

class Parser {
 public:
  Parser(std::string file, std::string base_dir)
      : file_(std::move(file)), base_dir_(std::move(base_dir)) {}

  ServeConfig Parse(const YAML::Node& root) {
    ServeConfig c;
    if (!root.IsMap())
      Fail(root, "(top level)", "expected a mapping", "start with 'applications:'");
    Known(root, "", {"http", "grpc", "applications"});
    if (root["http"]) {
      const YAML::Node& h = root["http"];
      Known(h, "http", {"host", "port", "proxy_location"});
      if (h["host"]) c.http_host = Str(h["host"], "http.host");
      if (h["port"]) c.http_port = Int(h["port"], "http.port", 0, 65535);
      if (h["proxy_location"]) {
        c.proxy_location = Str(h["proxy_location"], "http.proxy_location");
        if (c.proxy_location != "EveryNode" && c.proxy_location != "HeadOnly") {
          Fail(h["proxy_location"], "http.proxy_location",
               "unknown proxy location '" + c.proxy_location + "'",
               "use EveryNode (a proxy on each node, the default) or HeadOnly");
        }
      }
    }
    if (root["grpc"]) {
      Known(root["grpc"], "grpc", {"port"});
      if (root["grpc"]["port"]) c.grpc_port = Int(root["grpc"]["port"], "grpc.port", -1, 65535);
    }
    const YAML::Node& apps = root["applications"];
    if (!apps || !apps.IsSequence()) {
      Fail(root, "applications", "missing or not a list",
           "add 'applications:' with one '- name: ...' entry per application");
    }
    std::set<std::string> names, prefixes;
    for (size_t i = 0; i < apps.size(); ++i) {
      AppConfig app = App(apps[i], "applications[" + std::to_string(i) + "]");
      if (!names.insert(app.name).second) {
        Fail(apps[i], "applications[" + std::to_string(i) + "].name",
             "'" + app.name + "' is used twice", "give each application its own name");
      }
      if (!app.route_prefix.empty() && !prefixes.insert(app.route_prefix).second) {
        Fail(apps[i], "applications[" + std::to_string(i) + "].route_prefix",
             "'" + app.route_prefix + "' is used by another application",
             "give each application its own prefix");
      }
      c.applications.push_back(std::move(app));
    }
    return c;
  }

 private:
  [[noreturn]] void Fail(const YAML::Node& at, const std::string& field, const std::string& what,
                         const std::string& fix) {
    std::string where = file_;
    if (at.IsDefined() && at.Mark().line >= 0) where += ":" + std::to_string(at.Mark().line + 1);
    throw ConfigError{where + ": " + field + ": " + what + ". Fix: " + fix};
  }

  void Known(const YAML::Node& n, const std::string& path, const std::set<std::string>& keys) {
    if (!n.IsMap())
      Fail(n, path.empty() ? "(top level)" : path, "expected a mapping", "use key: value lines");
    for (const auto& kv : n) {
      std::string key = kv.first.as<std::string>();
      if (keys.count(key)) continue;
      std::string allowed;
      for (const auto& k : keys) allowed += (allowed.empty() ? "" : ", ") + k;
      Fail(kv.first, (path.empty() ? "" : path + ".") + key, "unknown field",
           "use one of: " + allowed);
    }
  }

  std::string Str(const YAML::Node& n, const std::string& field) {
    if (!n.IsScalar()) Fail(n, field, "expected text", "write a single value");
    return n.as<std::string>();
  }

  // The scalar at `n` as a T; else fails saying it expected `what`.
  template <typename T>
  T Scalar(const YAML::Node& n, const std::string& field, const std::string& what,
           const std::string& fix) {
    if (n.IsScalar()) {
      try {
        return n.as<T>();
      } catch (const YAML::Exception&) {
      }
    }
    Fail(
        n, field,
        "expected " + what + ", got '" + (n.IsScalar() ? n.as<std::string>() : "a structure") + "'",
        fix);
  }

  int Int(const YAML::Node& n, const std::string& field, int lo, int hi) {
    std::string fix = "write a number from " + std::to_string(lo) + " to " + std::to_string(hi);
    int v = Scalar<int>(n, field, "a whole number", fix);
    if (v < lo || v > hi) Fail(n, field, std::to_string(v) + " is out of range", fix);
    return v;
  }

  // A finite number in [lo, hi] (times default to at most a day).
  double Num(const YAML::Node& n, const std::string& field, double lo, double hi = kMaxSeconds) {
    double v = Scalar<double>(n, field, "a number", "write a number such as 2 or 0.5");
    if (!std::isfinite(v)) {
      Fail(n, field, "must be a finite number",
           "write a number from " + Short(lo) + " to " + Short(hi));
    }
    if (!(v >= lo)) Fail(n, field, "must be at least " + Short(lo), "write a larger number");
    if (v > hi) {
      Fail(n, field, Short(v) + " is more than " + Short(hi),
           "write at most " + Short(hi) + (hi == kMaxSeconds ? " (a day, in seconds)" : ""));
    }
    return v;
  }
  static std::string Short(double v) {
    std::ostringstream out;
    out << v;
    return out.str();
  }

  // YAML values as JSON, bounded: aliases may name a node many times, so
  // the expanded size and the depth are counted.
  Json ToJson(const YAML::Node& n, int depth = 0) {
    if (depth > kMaxDepth) {
      Fail(n, "(value)", "nested deeper than " + std::to_string(kMaxDepth) + " levels",
           "flatten the structure");
    }
    if (++expanded_ > kMaxExpandedNodes) {
      Fail(n, "(value)",
           "expands to more than " + std::to_string(kMaxExpandedNodes) +
               " values (aliases repeat what they name)",
           "write smaller values, or fewer aliases");
    }
    switch (n.Type()) {
      case YAML::NodeType::Map: {
        Json j = Json::object();
        for (const auto& kv : n) j[kv.first.as<std::string>()] = ToJson(kv.second, depth + 1);
        return j;
      }
      case YAML::NodeType::Sequence: {
        Json j = Json::array();
        for (const auto& e : n) j.push_back(ToJson(e, depth + 1));
        return j;
      }
      case YAML::NodeType::Scalar: {
        std::string s = n.as<std::string>();
        if (n.Tag() == "!") return s;  // quoted: text
        if (s == "true" || s == "false") return s == "true";
        if (s == "null" || s == "~") return nullptr;
        try {
          size_t used = 0;
          long long i = std::stoll(s, &used);
          if (used == s.size()) return i;
          double d = std::stod(s, &used);
          if (used == s.size()) return d;
        } catch (...) {
        }
        return s;
      }
      default:
        return nullptr;
    }
  }

  AppConfig App(const YAML::Node& n, const std::string& path) {
    Known(n, path, {"name", "route_prefix", "code", "ingress", "deployments", "models", "cache"});
    AppConfig app;
    if (!n["name"]) Fail(n, path + ".name", "missing", "name the application, e.g. 'name: ocr'");
    app.name = Str(n["name"], path + ".name");
    if (app.name.empty() || app.name.find('/') != std::string::npos) {
      Fail(n["name"], path + ".name", "must be non-empty without '/'",
           "use letters, digits, '-' or '_'");
    }
    if (n["route_prefix"]) {
      app.route_prefix = Str(n["route_prefix"], path + ".route_prefix");
      if (app.route_prefix.empty() || app.route_prefix[0] != '/') {
        Fail(n["route_prefix"], path + ".route_prefix", "must start with '/'", "write e.g. /ocr");
      }
      if (app.route_prefix.size() > 1 && app.route_prefix.back() == '/')
        app.route_prefix.pop_back();
    }
    if (n["code"]) {
      std::vector<YAML::Node> files;
      if (n["code"].IsSequence()) {
        for (const auto& f : n["code"]) files.push_back(f);
      } else {
        files.push_back(n["code"]);
      }
      for (const auto& f : files) {
        std::string p = Str(f, path + ".code");
        if (base_dir_.empty()) {  // names only: the files are not on this machine
          app.code.push_back(p);
          continue;
        }
        std::filesystem::path fp(p);
        if (fp.is_relative()) fp = std::filesystem::path(base_dir_) / fp;
        std::error_code ec;
        auto canonical = std::filesystem::canonical(fp, ec);
        if (ec) {
          Fail(f, path + ".code", "no file " + fp.string(),
               "build the application's shared library first, or give its path (relative paths "
               "are from the directory you run lumen in)");
        }
        app.code.push_back(canonical.string());
      }
    }
    if (n["models"]) {
      const YAML::Node& ms = n["models"];
      if (!ms.IsSequence() || ms.size() == 0) {
        Fail(ms, path + ".models", "expected a list",
             "write '- repository: ./models' entries (one per model repository)");
      }
      for (size_t i = 0; i < ms.size(); ++i) {
        app.models.push_back(Models(ms[i], path + ".models[" + std::to_string(i) + "]"));
      }
    }
    const YAML::Node& deps = n["deployments"];
    if (app.models.empty() && (!deps || !deps.IsSequence() || deps.size() == 0)) {
      Fail(n, path + ".deployments", "missing or empty",
           "list at least one '- name: ...' deployment, or models under 'models:'");
    }
    if (deps && !deps.IsSequence()) {
      Fail(deps, path + ".deployments", "expected a list", "write '- name: ...' entries");
    }
    std::set<std::string> names;
    for (size_t i = 0; deps && i < deps.size(); ++i) {
      std::string dpath = path + ".deployments[" + std::to_string(i) + "]";
      DeploymentConfig d = Deployment(deps[i], dpath);
      if (!names.insert(d.name).second) {
        Fail(deps[i], dpath + ".name", "'" + d.name + "' is used twice",
             "give each deployment its own name");
      }
      app.deployments.push_back(std::move(d));
    }
    if (n["ingress"]) {
      app.ingress = Str(n["ingress"], path + ".ingress");
      if (!names.count(app.ingress)) {
        Fail(n["ingress"], path + ".ingress", "no deployment named '" + app.ingress + "'",
             "name one of this application's deployments");
      }
    } else if (!app.deployments.empty()) {
      app.ingress = app.deployments.front().name;
    }
    if (n["cache"]) {
      if (app.ingress.empty()) {
        Fail(n["cache"], path + ".cache", "the application has no ingress to cache",
             "put `cache:` on its models entry instead");
      }
      app.cache = Cache(n["cache"], path + ".cache");
    }
    return app;
  }

  CacheConfig Cache(const YAML::Node& n, const std::string& path) {
    if (!n.IsMap()) {
      Fail(n, path, "expected a mapping", "write e.g. {threshold: 0.92, max_entries: 10000}");
    }
    CacheConfig c;
    if (n["embedder"]) {
      c.embedder = Str(n["embedder"], path + ".embedder");
      if (c.embedder != "text" && c.embedder != "image" && c.embedder.rfind("model:", 0) != 0) {
        Fail(n["embedder"], path + ".embedder", "unknown embedder '" + c.embedder + "'",
             "use text, image or model:NAME (a model of this application)");
      }
    }
    if (n["threshold"]) c.threshold = Num(n["threshold"], path + ".threshold", -1, 1);
    if (n["max_entries"]) {
      c.max_entries = Int(n["max_entries"], path + ".max_entries", 0, 100'000'000);
    }
    if (n["ttl_s"]) c.ttl_s = Num(n["ttl_s"], path + ".ttl_s", 0);
    YAML::Node settings = YAML::Clone(n);
    for (const char* k : {"embedder", "threshold", "max_entries", "ttl_s"}) settings.remove(k);
    settings["name"] = "cache";
    c.settings = Deployment(settings, path);
    c.settings.name.clear();
    return c;
  }

  ModelGroup Models(const YAML::Node& n, const std::string& path) {
    if (!n.IsMap()) {
      Fail(n, path, "expected a mapping", "write e.g. {repository: ./models, num_replicas: 2}");
    }
    if (n["name"] || n["class"] || n["init_args"] || n["user_config"] || n["batching"]) {
      const char* key = n["name"]          ? "name"
                        : n["class"]       ? "class"
                        : n["init_args"]   ? "init_args"
                        : n["user_config"] ? "user_config"
                                           : "batching";
      Fail(n[key], path + "." + key, "is not a model setting",
           "models take their names from the repository and batch as config.pbtxt's "
           "dynamic_batching says; remove it");
    }
    ModelGroup g;
    if (!n["repository"]) {
      Fail(n, path + ".repository", "missing",
           "give the model repository's folder, e.g. 'repository: ./models'");
    }
    g.repository = Str(n["repository"], path + ".repository");
    if (!base_dir_.empty()) {
      std::filesystem::path fp(g.repository);
      if (fp.is_relative()) fp = std::filesystem::path(base_dir_) / fp;
      std::error_code ec;
      auto canonical = std::filesystem::canonical(fp, ec);
      if (ec || !std::filesystem::is_directory(canonical)) {
        Fail(n["repository"], path + ".repository", "no folder " + fp.string(),
             "give the repository's path (relative paths are from the directory you run "
             "lumen in)");
      }
      g.repository = canonical.string();
    }
    if (n["names"]) {
      const YAML::Node& ns = n["names"];
      if (!ns.IsSequence()) Fail(ns, path + ".names", "expected a list", "write [mlp, ocr]");
      for (const auto& x : ns) g.names.push_back(Str(x, path + ".names"));
    }
    if (n["multiplex"]) {
      const YAML::Node& m = n["multiplex"];
      Known(m, path + ".multiplex", {"name", "max_models_per_replica"});
      if (!m["name"]) {
        Fail(m, path + ".multiplex.name", "missing", "name the deployment that holds the models");
      }
      g.multiplex = Str(m["name"], path + ".multiplex.name");
      g.max_models_per_replica = m["max_models_per_replica"]
                                     ? Int(m["max_models_per_replica"],
                                           path + ".multiplex.max_models_per_replica", 1, 100'000)
                                     : 8;
    }
    if (n["cache"]) g.cache = Cache(n["cache"], path + ".cache");
    YAML::Node settings = YAML::Clone(n);
    settings.remove("repository");
    settings.remove("names");
    settings.remove("multiplex");
    settings.remove("cache");
    settings["name"] = "model";
    g.settings = Deployment(settings, path);
    g.settings.name.clear();
    return g;
  }

  DeploymentConfig Deployment(const YAML::Node& n, const std::string& path) {
    Known(
        n, path,
        {"name", "class", "num_replicas", "resources", "max_ongoing_requests",
         "max_queued_requests", "router", "hash_header", "request_timeout_s",
         "health_check_period_s", "init_args", "user_config", "autoscaling", "batching", "expose"});
    DeploymentConfig d;
    if (!n["name"])
      Fail(n, path + ".name", "missing", "name the deployment, e.g. 'name: Detector'");
    d.name = Str(n["name"], path + ".name");
    d.cls = n["class"] ? Str(n["class"], path + ".class") : d.name;
    if (n["num_replicas"])
      d.num_replicas = Int(n["num_replicas"], path + ".num_replicas", 0, 10'000);
    if (n["resources"]) {
      const YAML::Node& r = n["resources"];
      if (!r.IsMap())
        Fail(r, path + ".resources", "expected a mapping", "write e.g. {CPU: 1, GPU: 1}");
      d.resources.clear();
      for (const auto& kv : r) {
        std::string name = kv.first.as<std::string>();
        d.resources[name] = Num(kv.second, path + ".resources." + name, 0, 1e15);
      }
    }
    if (n["max_ongoing_requests"]) {
      d.max_ongoing_requests =
          Int(n["max_ongoing_requests"], path + ".max_ongoing_requests", 1, 100'000);
    }
    if (n["max_queued_requests"]) {
      d.max_queued_requests =
          Int(n["max_queued_requests"], path + ".max_queued_requests", -1, 10'000'000);
    }
    if (n["router"]) {
      d.router = Str(n["router"], path + ".router");
      const auto& known = RouterPolicies();
      if (std::find(known.begin(), known.end(), d.router) == known.end()) {
        Fail(n["router"], path + ".router", "unknown router '" + d.router + "'",
             "use pow2 (default), swrr, queue, hash or rr");
      }
    }
    if (n["hash_header"]) d.hash_header = Str(n["hash_header"], path + ".hash_header");
    if (n["expose"]) {
      std::string v = Str(n["expose"], path + ".expose");
      if (v != "true" && v != "false") {
        Fail(n["expose"], path + ".expose", "expected true or false, not '" + v + "'",
             "write 'expose: true' to let the gRPC ingress call this deployment directly");
      }
      d.expose = v == "true";
    }
    if (n["request_timeout_s"]) {
      d.request_timeout_s = Num(n["request_timeout_s"], path + ".request_timeout_s", 0.001);
    }
    if (n["health_check_period_s"]) {
      d.health_check_period_s =
          Num(n["health_check_period_s"], path + ".health_check_period_s", 0.05);
    }
    if (n["init_args"]) d.init_args = ToJson(n["init_args"]);
    if (n["user_config"]) d.user_config = ToJson(n["user_config"]);
    if (n["batching"]) {
      const YAML::Node& b = n["batching"];
      std::string bpath = path + ".batching";
      Known(b, bpath, {"max_batch_size", "batch_wait_timeout_s"});
      d.max_batch_size =
          b["max_batch_size"] ? Int(b["max_batch_size"], bpath + ".max_batch_size", 1, 100'000) : 8;
      if (b["batch_wait_timeout_s"]) {
        d.batch_wait_timeout_s = Num(b["batch_wait_timeout_s"], bpath + ".batch_wait_timeout_s", 0);
      }
      if (d.max_batch_size > d.max_ongoing_requests) {
        Fail(b, bpath + ".max_batch_size",
             "is above max_ongoing_requests (" + std::to_string(d.max_ongoing_requests) +
                 "), so batches could never fill",
             "raise max_ongoing_requests to at least max_batch_size");
      }
    }
    if (n["autoscaling"]) {
      const YAML::Node& a = n["autoscaling"];
      std::string apath = path + ".autoscaling";
      Known(a, apath,
            {"min_replicas", "max_replicas", "target_ongoing_requests", "upscale_delay_s",
             "downscale_delay_s"});
      AutoscalingConfig as;
      if (a["min_replicas"])
        as.min_replicas = Int(a["min_replicas"], apath + ".min_replicas", 0, 10'000);
      as.max_replicas = std::max(as.min_replicas, 1);
      if (a["max_replicas"])
        as.max_replicas = Int(a["max_replicas"], apath + ".max_replicas", 1, 10'000);
      if (as.max_replicas < as.min_replicas) {
        Fail(a["max_replicas"], apath + ".max_replicas",
             "is below min_replicas (" + std::to_string(as.min_replicas) + ")",
             "make max_replicas at least min_replicas");
      }
      if (a["target_ongoing_requests"]) {
        as.target_ongoing_requests =
            Num(a["target_ongoing_requests"], apath + ".target_ongoing_requests", 0.01, 1e6);
      }
      if (a["upscale_delay_s"])
        as.upscale_delay_s = Num(a["upscale_delay_s"], apath + ".upscale_delay_s", 0);
      if (a["downscale_delay_s"]) {
        as.downscale_delay_s = Num(a["downscale_delay_s"], apath + ".downscale_delay_s", 0);
      }
      d.autoscaling = as;
    }
    return d;
  }

  std::string file_;
  std::string base_dir_;
  size_t expanded_ = 0;  // values ToJson made so far
};

// The line (1-based) of byte `at`.
int LineOf(std::string_view text, size_t at) {
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + at, '\n'));
}

// Checks on the raw text, before YAML sees it: size, UTF-8, flow nesting
// and alias count. "" when fine.
std::string CheckText(std::string_view text, const std::string& file) {
  if (text.size() > kMaxConfigBytes) {
    return file + ": " + std::to_string(text.size()) + " bytes is more than the " +
           std::to_string(kMaxConfigBytes) + " a serve config may have. Fix: split it";
  }
  for (size_t i = 0; i < text.size();) {
    unsigned char c = text[i];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= text.size();
    for (int k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(text[i + k]) >> 6) == 2;
    if (ok && len == 2) ok = c >= 0xc2;  // no overlong forms
    if (!ok) {
      return file + ":" + std::to_string(LineOf(text, i)) +
             ": bytes that are not UTF-8. Fix: save the file as UTF-8";
    }
    i += len;
  }
  int depth = 0, max_depth = 0, aliases = 0;
  char quote = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quote) {
      if (c == quote) quote = 0;
      continue;
    }
    if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '#') {
      while (i < text.size() && text[i] != '\n') ++i;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
      if (max_depth > kMaxDepth) {
        return file + ":" + std::to_string(LineOf(text, i)) + ": nested deeper than " +
               std::to_string(kMaxDepth) + " levels. Fix: flatten the structure";
      }
    } else if (c == ']' || c == '}') {
      depth = std::max(0, depth - 1);
    } else if (c == '*' && i + 1 < text.size() &&
               !std::isspace(static_cast<unsigned char>(text[i + 1])) &&
               (i == 0 || std::isspace(static_cast<unsigned char>(text[i - 1])) ||
                text[i - 1] == '[' || text[i - 1] == ',' || text[i - 1] == '{')) {
      if (++aliases > kMaxAliases) {
        return file + ":" + std::to_string(LineOf(text, i)) + ": more than " +
               std::to_string(kMaxAliases) + " aliases. Fix: write the values out";
      }
    }
  }
  return "";
}

}  // namespace

const DeploymentConfig* AppConfig::Find(const std::string& deployment) const {
  for (const auto& d : deployments) {
    if (d.name == deployment) return &d;
  }
  return nullptr;
}

absl::StatusOr<ServeConfig> ParseServeConfig(const std::string& yaml, const std::string& file_name,
                                             const std::string& base_dir) {
  if (std::string bad = CheckText(yaml, file_name); !bad.empty()) {
    return absl::InvalidArgumentError(bad);
  }
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::ParserException& e) {
    return absl::InvalidArgumentError(file_name + ":" + std::to_string(e.mark.line + 1) +
                                      ": not valid YAML (" + e.msg +
                                      "). Fix: check the indentation and the ':' after each key");
  }
  try {
    return Parser(file_name, base_dir).Parse(root);
  } catch (const ConfigError& e) {
    return absl::InvalidArgumentError(e.message);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(file_name + ":" + std::to_string(e.mark.line + 1) + ": " +
                                      e.msg);
  }
}

absl::StatusOr<ServeConfig> LoadServeConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError("cannot read " + path + ": no such file or not readable");
  std::stringstream text;
  text << in.rdbuf();
  return ParseServeConfig(text.str(), path, std::filesystem::current_path().string());
}

absl::Status ValidateServeConfig(const ServeConfig& config) {
  std::set<std::string> names;
  for (const auto& app : config.applications) {
    if (app.name.empty() || !names.insert(app.name).second) {
      return absl::InvalidArgumentError("application names must be set and unique ('" + app.name +
                                        "')");
    }
    if (app.deployments.empty() && app.models.empty()) {
      return absl::InvalidArgumentError("application '" + app.name + "' has no deployments");
    }
    if (!app.ingress.empty() && app.Find(app.ingress) == nullptr) {
      return absl::InvalidArgumentError("application '" + app.name + "': ingress '" + app.ingress +
                                        "' is not one of its deployments");
    }
    for (const auto& d : app.deployments) {
      if (!MakeRouter(d.router, {}).ok()) {
        return absl::InvalidArgumentError("deployment '" + d.name + "': unknown router '" +
                                          d.router + "'");
      }
      if (d.max_ongoing_requests < 1) {
        return absl::InvalidArgumentError("deployment '" + d.name +
                                          "': max_ongoing_requests must be at least 1");
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace lumen::serve
