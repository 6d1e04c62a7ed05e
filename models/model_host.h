// ModelHost: what a model replica runs. It holds the models of one
// deployment (one model, or many when multiplexed), each with the versions
// its version_policy serves, and answers the KServe v2 requests the proxies
// forward to it (v2.h): metadata, readiness and inference, over HTTP bodies
// or gRPC messages. Registered as the deployment class `lumen.Model`.
//
// Versions: Apply() loads new or changed versions beside the running ones
// and swaps them in once loaded; requests in flight keep the version they
// started on (shared_ptr); a version that fails to load leaves the old ones
// serving and Apply() returns the loader's reason.
// Multiplexing (max_loaded > 0): models load on their first request, at
// most max_loaded at once, the least recently used unloaded first.
// Dynamic batching (config.pbtxt dynamic_batching): requests for a version
// that arrive within max_queue_delay_microseconds are merged along the
// batch dimension up to max_batch_size, run once and split back.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "lumen/serve.h"
#include "models/repository.h"

namespace lumen::models {

struct HostOptions {
  std::string deployment;
  // 0: every model loaded at Apply; N: at most N loaded, on demand.
  size_t max_loaded = 0;
  // Where a model file is on this machine (default: fetched from the
  // cluster by digest, serve/replica.h FetchClusterFile).
  std::function<absl::StatusOr<std::string>(const ModelFile&)> fetch;
  // Where model folders are laid out (default LUMEN_HOME/models).
  std::string work_dir;
  // Requests waiting in one version's batcher beyond which new ones get 503.
  size_t max_queue = 1024;
};

class ModelHost {
 public:
  explicit ModelHost(HostOptions options);
  ~ModelHost();

  // {"models": [ModelToJson(...), ...]}: the models this host serves now.
  absl::Status Apply(const nlohmann::json& models);
  // /v2/models/NAME[/versions/V][/ready|/infer]; a gRPC ModelInferRequest
  // when the header x-lumen-v2 is "grpc" (the answer is then a serialized
  // ModelInferResponse).
  serve::Response Handle(const serve::Request& request);
  // Models with a version loaded now.
  std::vector<std::string> Loaded() const;
  // Per model: state, versions, reason, unsupported config fields.
  nlohmann::json Status() const;
  // Prometheus text: requests, failures, batch sizes, queue and compute
  // time per model, loaded models.
  std::string MetricsText(const std::string& replica) const;

 private:
  struct Version;
  struct Entry;
  struct Metrics;
  absl::StatusOr<std::shared_ptr<Version>> LoadVersion(const RepoModel& model, int64_t version);
  // The version a request asks for ("" = the newest loaded), loading the
  // model first when multiplexed.
  absl::StatusOr<std::shared_ptr<Version>> Pick(const std::string& model,
                                                const std::string& version);
  absl::Status LoadEntry(const std::shared_ptr<Entry>& entry);
  void EvictBeyondLimit(const std::string& keep) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  serve::Response Infer(const std::string& model, const std::string& version,
                        const serve::Request& request);

  HostOptions options_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> models_ ABSL_GUARDED_BY(mu_);
  uint64_t clock_ ABSL_GUARDED_BY(mu_) = 0;  // for LRU
  absl::Mutex apply_mu_;                     // one Apply at a time
  std::unique_ptr<Metrics> metrics_;
};

// serve::Response for a failed Status: its message as {"error": ...} with
// the HTTP code the v2 protocol uses (400, 404, 503, 500).
serve::Response ErrorResponse(const absl::Status& status);

}  // namespace lumen::models
