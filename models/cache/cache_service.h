// CacheService: what a `lumen.Cache` replica does with a request, apart
// from the cluster (the deployment, cache_deployment.cc, gives it a
// DeploymentHandle to forward through and publishes its metrics).
//
//   embed -> look up in the request's namespace -> hit: the stored answer
//   (x-lumen-cache: hit, x-lumen-cache-similarity) | miss: forward the
//   request unchanged, store a 200 answer (x-lumen-cache: miss).
//
// The namespace is the application, the method and path, the query, the
// protocol and a digest of the request's exact part (embedder.h
// SplitRequest): applications, models and model versions never share
// answers, nor do requests that differ in anything but their text.
//
// Passed through without lookup or store (x-lumen-cache: bypass): requests
// with nothing to embed (GET /ready, metadata) or that the embedder
// refuses, and `cache-control: no-store`. `cache-control: no-cache` skips
// the lookup but stores the fresh answer. Answers that are streams, not
// 200, or marked `cache-control: no-store`/`private` are not stored.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "lumen/serve.h"
#include "models/cache/embedder.h"
#include "models/cache/semantic_cache.h"

namespace lumen::models {

// A `lumen.Cache` deployment's init_args:
//   {"target": "DEPLOYMENT",                 required: what a miss calls
//    "embedder": "text"|"image"|"model:NAME", default "text"
//    "threshold": 0.9,                       default: the embedder's
//    "term_weight": 0.5,                     the terms' share of the score
//    "max_entries": 10000, "ttl_s": 0,       0: unbounded / no expiry
//    "text_fields": ["prompt", ...]}         JSON keys holding the text
// plus the model embedder's embedder_input, embedder_output, embedder_dim,
// embedder_timeout_s.
struct CacheConfig {
  std::string target;
  std::string embedder = "text";
  std::optional<float> threshold;
  std::optional<float> term_weight;
  size_t max_entries = 10000;
  double ttl_s = 0;
  SplitOptions split;
};
// INVALID_ARGUMENT naming the field and what it takes.
absl::StatusOr<CacheConfig> ParseCacheConfig(const nlohmann::json& init_args);

// Answers a request the cache could not: the target's answer.
using ForwardFn = std::function<serve::Response(const serve::Request&)>;

class CacheService {
 public:
  // `app` and `replica` label the metrics; `app` also starts every
  // namespace. `clock`: for ttl_s (nullptr: the real clock).
  static absl::StatusOr<std::unique_ptr<CacheService>> Create(const CacheConfig& config,
                                                              std::unique_ptr<Embedder> embedder,
                                                              ForwardFn forward, std::string app,
                                                              std::string replica,
                                                              const Clock* clock = nullptr);
  ~CacheService();

  // Thread-safe.
  serve::Response Handle(const serve::Request& request);

  // Prometheus text, labelled app and replica: lumen_cache_hits_total,
  // _misses_total, _bypassed_total, _entries, _evictions_total,
  // _expired_total and the lumen_cache_lookup_seconds histogram (embedding
  // plus index search: what every request pays, hit or miss).
  std::string MetricsText() const;
  CacheStats Stats() const { return cache_->Stats(); }
  const SemanticCache& cache() const { return *cache_; }

  // The namespace of `request` given its parts (for tests).
  std::string Namespace(const serve::Request& request, const RequestParts& parts) const;

 private:
  CacheService(const CacheConfig& config, std::unique_ptr<Embedder> embedder,
               std::unique_ptr<SemanticCache> cache, ForwardFn forward, std::string app,
               std::string replica);
  serve::Response Forward(const serve::Request& request, const char* outcome);

  CacheConfig config_;
  std::unique_ptr<Embedder> embedder_;
  std::unique_ptr<SemanticCache> cache_;
  ForwardFn forward_;
  std::string app_, replica_;
  std::atomic<uint64_t> bypassed_{0};
  struct Histogram;
  std::unique_ptr<Histogram> lookup_seconds_;
};

}  // namespace lumen::models
