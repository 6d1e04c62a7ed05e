// The cache in front of a deployment; see cache_service.h.
#include "models/cache/cache_service.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "proto/grpc_service.pb.h"

namespace lumen::models {
namespace {

using Json = nlohmann::json;

const std::vector<std::string>& KnownKeys() {
  static const auto* keys = new std::vector<std::string>{
      "target",          "embedder",     "threshold",         "term_weight",
      "max_entries",     "ttl_s",        "text_fields",       "embedder_input",
      "embedder_output", "embedder_dim", "embedder_timeout_s"};
  return *keys;
}

std::string Lower(const std::string& s) { return absl::AsciiStrToLower(s); }

bool Storable(const serve::Response& r) {
  if (r.status != 200 || !r.chunks.empty()) return false;
  auto it = r.headers.find("cache-control");
  if (it == r.headers.end()) return true;
  std::string cc = Lower(it->second);
  return cc.find("no-store") == std::string::npos && cc.find("private") == std::string::npos;
}

// A cached v2 answer carries the id of the request that produced it; the
// protocol says an answer echoes its own request's id.
void RewriteV2Id(const RequestParts& parts, serve::Response* r) {
  if (parts.kind == RequestParts::Kind::kV2Grpc) {
    inference::ModelInferResponse message;
    if (message.ParseFromString(r->body) && message.id() != parts.v2_id) {
      message.set_id(parts.v2_id);
      r->body = message.SerializeAsString();
    }
    return;
  }
  if (parts.kind != RequestParts::Kind::kV2Http) return;
  size_t json_size = r->body.size();
  auto header = r->headers.find("inference-header-content-length");
  if (header != r->headers.end()) {
    size_t n = 0;
    if (!absl::SimpleAtoi(header->second, &n) || n > r->body.size()) return;
    json_size = n;
  }
  Json j = Json::parse(r->body.substr(0, json_size), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return;
  auto id = j.find("id");
  bool same = parts.v2_id.empty() ? id == j.end()
                                  : (id != j.end() && id->is_string() && *id == parts.v2_id);
  if (same) return;  // nothing to change: keep the stored bytes
  if (parts.v2_id.empty()) {
    j.erase("id");
  } else {
    j["id"] = parts.v2_id;
  }
  std::string head = j.dump(-1, ' ', false, Json::error_handler_t::replace);
  r->body = head + r->body.substr(json_size);
  if (header != r->headers.end()) header->second = std::to_string(head.size());
}

}  // namespace

struct CacheService::Histogram {
  // 10 us .. 1 s: a text embedding and a flat search take tens of
  // microseconds; a model embedder takes milliseconds.
  std::vector<double> bounds = {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                0.005,   0.01,     0.025,   0.05,   0.1,     0.25,   0.5,   1};
  mutable absl::Mutex mu;
  std::vector<uint64_t> counts ABSL_GUARDED_BY(mu) = std::vector<uint64_t>(17, 0);
  double sum ABSL_GUARDED_BY(mu) = 0;
  uint64_t count ABSL_GUARDED_BY(mu) = 0;

  void Add(double v) {
    size_t i = std::lower_bound(bounds.begin(), bounds.end(), v) - bounds.begin();
    absl::MutexLock lock(&mu);
    counts[i]++;
    sum += v;
    count++;
  }
  void Write(std::string* out, const std::string& name, const std::string& labels) const {
    absl::MutexLock lock(&mu);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < bounds.size(); ++i) {
      cumulative += counts[i];
      absl::StrAppend(out, name, "_bucket{", labels, ",le=\"", bounds[i], "\"} ", cumulative, "\n");
    }
    absl::StrAppend(out, name, "_bucket{", labels, ",le=\"+Inf\"} ", count, "\n");
    absl::StrAppend(out, name, "_sum{", labels, "} ", sum, "\n");
    absl::StrAppend(out, name, "_count{", labels, "} ", count, "\n");
  }
};

absl::StatusOr<CacheConfig> ParseCacheConfig(const Json& init_args) {
  if (!init_args.is_object()) {
    return absl::InvalidArgumentError(
        "lumen.Cache: init_args must be an object such as {\"target\": \"Model\", "
        "\"embedder\": \"text\"}");
  }
  for (const auto& [key, value] : init_args.items()) {
    if (std::find(KnownKeys().begin(), KnownKeys().end(), key) == KnownKeys().end()) {
      return absl::InvalidArgumentError(absl::StrCat("lumen.Cache: unknown init_args key '", key,
                                                     "'; the keys are ",
                                                     absl::StrJoin(KnownKeys(), ", ")));
    }
  }
  CacheConfig c;
  auto bad = [](const char* key, const char* what) {
    return absl::InvalidArgumentError(absl::StrCat("lumen.Cache: init_args.", key, " ", what));
  };
  auto target = init_args.find("target");
  if (target == init_args.end() || !target->is_string() || target->get<std::string>().empty()) {
    return bad("target", "must name the deployment of this application that answers misses");
  }
  c.target = target->get<std::string>();
  if (auto e = init_args.find("embedder"); e != init_args.end()) {
    if (!e->is_string()) return bad("embedder", "must be \"text\", \"image\" or \"model:NAME\"");
    c.embedder = e->get<std::string>();
  }
  if (auto t = init_args.find("threshold"); t != init_args.end()) {
    if (!t->is_number() || !(t->get<double>() > -1) || t->get<double>() > 1) {
      return bad("threshold", "must be a cosine similarity in (-1, 1], such as 0.9");
    }
    c.threshold = t->get<float>();
  }
  if (auto t = init_args.find("term_weight"); t != init_args.end()) {
    if (!t->is_number() || !(t->get<double>() >= 0) || t->get<double>() > 1) {
      return bad("term_weight",
                 "must be in [0, 1]: the terms' share of the score (0: vectors only)");
    }
    c.term_weight = t->get<float>();
  }
  if (auto m = init_args.find("max_entries"); m != init_args.end()) {
    if (!m->is_number_integer() || m->get<int64_t>() < 0) {
      return bad("max_entries", "must be an integer >= 0 (0: no bound)");
    }
    c.max_entries = static_cast<size_t>(m->get<int64_t>());
  }
  if (auto t = init_args.find("ttl_s"); t != init_args.end()) {
    if (!t->is_number() || !(t->get<double>() >= 0) || std::isinf(t->get<double>())) {
      return bad("ttl_s", "must be seconds >= 0 (0: entries never expire)");
    }
    c.ttl_s = t->get<double>();
  }
  if (auto f = init_args.find("text_fields"); f != init_args.end()) {
    bool ok = f->is_array();
    if (ok) {
      for (const auto& e : *f) {
        if (!e.is_string()) {
          ok = false;
          break;
        }
        c.split.text_fields.push_back(e.get<std::string>());
      }
    }
    if (!ok) return bad("text_fields", "must be a list of JSON keys, such as [\"prompt\"]");
  }
  return c;
}

absl::StatusOr<std::unique_ptr<CacheService>> CacheService::Create(
    const CacheConfig& config, std::unique_ptr<Embedder> embedder, ForwardFn forward,
    std::string app, std::string replica, const Clock* clock) {
  if (embedder == nullptr || !forward) {
    return absl::InvalidArgumentError("CacheService needs an embedder and a forward function");
  }
  SemanticCacheOptions o;
  o.dim = embedder->dim();
  o.threshold = config.threshold.value_or(embedder->default_threshold());
  if (config.term_weight.has_value()) o.term_weight = *config.term_weight;
  o.max_entries = config.max_entries;
  o.ttl_s = config.ttl_s;
  o.clock = clock;
  auto cache = SemanticCache::Create(o);
  if (!cache.ok()) return cache.status();
  return std::unique_ptr<CacheService>(new CacheService(config, std::move(embedder),
                                                        std::move(*cache), std::move(forward),
                                                        std::move(app), std::move(replica)));
}

CacheService::CacheService(const CacheConfig& config, std::unique_ptr<Embedder> embedder,
                           std::unique_ptr<SemanticCache> cache, ForwardFn forward, std::string app,
                           std::string replica)
    : config_(config),
      embedder_(std::move(embedder)),
      cache_(std::move(cache)),
      forward_(std::move(forward)),
      app_(std::move(app)),
      replica_(std::move(replica)),
      lookup_seconds_(std::make_unique<Histogram>()) {}

CacheService::~CacheService() = default;

std::string CacheService::Namespace(const serve::Request& request,
                                    const RequestParts& parts) const {
  std::vector<std::string> query;
  for (const auto& [k, v] : request.query) query.push_back(absl::StrCat(k, "=", v));
  static constexpr const char* kKinds[] = {"raw", "json", "v2", "v2-grpc"};
  // The exact part goes in as a digest: it may be large, and equal digests
  // must mean equal parts.
  return absl::StrCat(app_, "\n", request.method, " ", request.path, "?", absl::StrJoin(query, "&"),
                      "\n", kKinds[static_cast<int>(parts.kind)], "\n", Sha256Hex(parts.exact));
}

serve::Response CacheService::Forward(const serve::Request& request, const char* outcome) {
  serve::Response r = forward_(request);
  r.headers["x-lumen-cache"] = outcome;
  return r;
}

serve::Response CacheService::Handle(const serve::Request& request) {
  std::string cc = Lower(request.Header("cache-control"));
  if (cc.find("no-store") != std::string::npos) {
    bypassed_++;
    return Forward(request, "bypass");
  }
  bool lookup = cc.find("no-cache") == std::string::npos;
  auto start = std::chrono::steady_clock::now();
  RequestParts parts = SplitRequest(request, config_.split);
  absl::StatusOr<std::vector<float>> vector = embedder_->EmbedParts(parts);
  if (!vector.ok()) {
    // Nothing to embed (metadata, readiness) or an embedder that failed:
    // the cache steps aside rather than failing a request it cannot judge.
    bypassed_++;
    return Forward(request, "bypass");
  }
  std::vector<uint64_t> terms = embedder_->Terms(parts);
  std::string ns = Namespace(request, parts);
  if (lookup) {
    absl::StatusOr<std::optional<CacheHit>> hit = cache_->Lookup(ns, *vector, terms);
    lookup_seconds_->Add(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (!hit.ok()) {
      bypassed_++;
      return Forward(request, "bypass");
    }
    if (hit->has_value()) {
      serve::Response r = std::move((*hit)->response);
      RewriteV2Id(parts, &r);
      r.headers["x-lumen-cache"] = "hit";
      r.headers["x-lumen-cache-similarity"] = absl::StrFormat("%.4f", (*hit)->similarity);
      return r;
    }
  }
  serve::Response r = forward_(request);
  if (Storable(r)) (void)cache_->Insert(ns, *vector, r, terms);
  r.headers["x-lumen-cache"] = "miss";
  return r;
}

std::string CacheService::MetricsText() const {
  CacheStats s = cache_->Stats();
  std::string labels = absl::StrCat("app=\"", app_, "\",replica=\"", replica_, "\"");
  std::string out;
  absl::StrAppend(&out, "lumen_cache_hits_total{", labels, "} ", s.hits, "\n");
  absl::StrAppend(&out, "lumen_cache_misses_total{", labels, "} ", s.misses, "\n");
  absl::StrAppend(&out, "lumen_cache_bypassed_total{", labels, "} ", bypassed_.load(), "\n");
  absl::StrAppend(&out, "lumen_cache_entries{", labels, "} ", s.entries, "\n");
  absl::StrAppend(&out, "lumen_cache_evictions_total{", labels, "} ", s.evictions, "\n");
  absl::StrAppend(&out, "lumen_cache_expired_total{", labels, "} ", s.expired, "\n");
  lookup_seconds_->Write(&out, "lumen_cache_lookup_seconds", labels);
  return out;
}

}  // namespace lumen::models
