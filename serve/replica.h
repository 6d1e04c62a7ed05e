// The actor that hosts one replica of a deployment: it makes the user's
// object from its registered class (LUMEN_DEPLOYMENT), takes requests on its
// data plane (channel.h; up to max_ongoing_requests at once per caller) and
// answers health checks, reconfigurations and load reports as actor calls.
#pragma once

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "lumen/serve.h"

namespace lumen::serve {

class ReplicaListener;

// A file shipped through the cluster (GCS KV namespace "code", key = its
// SHA-256), kept at LUMEN_HOME/<cache>/<digest>/<name> and checked against
// its digest whenever it is used. Returns the local path.
absl::StatusOr<std::string> FetchClusterFile(const std::string& name, const std::string& digest,
                                             const std::string& cache, int mode = 0644);

// Load since the previous report.
struct ReplicaStats {
  double ongoing = 0;  // time-averaged requests in progress
  double completed_per_s = 0;
  int64_t completed_total = 0;
  int ongoing_now = 0;
  std::string node;     // hex id of the node it runs on
  std::string address;  // host:port of its data plane (channel.h); "" if it has none
  // Who it is, so a restarted controller can adopt it.
  std::string app;
  std::string deployment;
  std::string replica;              // "Echo#3"
  std::string version;              // the deployment version it runs
  int64_t pid = 0;                  // its worker process (operators, chaos tests)
  std::vector<std::string> models;  // loaded now (DeploymentInstance::LoadedModels)
  std::vector<int> gpus;            // the node's GPUs it holds (resources GPU)
  MSGPACK_DEFINE(ongoing, completed_per_s, completed_total, ongoing_now, node, address, app,
                 deployment, replica, version, pid, models, gpus);
};

class Replica {
 public:
  // Throws (making the actor dead with the reason) when no loaded library
  // declares `cls`, or when its Create throws.
  // `options_json`: {"max_batch_size": N, "batch_wait_timeout_s": S} to
  // batch requests into CallBatch; "max_ongoing": requests its data plane
  // runs at once; "version": the deployment version (reported by Stats);
  // "code": [{name, digest}] shipped code files to load first.
  static Replica* Create(std::string app, std::string deployment, std::string replica_id,
                         std::string cls, std::string init_args_json, std::string user_config_json,
                         std::string options_json);
  ~Replica();

  // One request (from the data plane, channel.h).
  Response Handle(Request request);
  // "" once applied; else why not.
  std::string Reconfigure(std::string user_config_json);
  bool Health();
  ReplicaStats Stats();

 private:
  Replica(ReplicaContext context, std::string version,
          std::unique_ptr<internal::DeploymentInstance> instance);
  void Count(int delta);
  Response Call(const Request& request);
  // Batching: requests wait here; one thread runs CallBatch on up to
  // max_batch_size of them once that many wait or the oldest has waited
  // batch_wait_timeout_s.
  struct Batch;
  void RunBatches();
  std::unique_ptr<Batch> batch_;
  std::unique_ptr<ReplicaListener> listener_;  // stopped first

  ReplicaContext context_;
  std::string version_;
  std::string deployment_;
  std::unique_ptr<internal::DeploymentInstance> instance_;
  absl::Mutex mu_;
  int ongoing_ ABSL_GUARDED_BY(mu_) = 0;
  double busy_integral_ ABSL_GUARDED_BY(mu_) = 0;  // ongoing × seconds since the last report
  int64_t completed_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t completed_total_ ABSL_GUARDED_BY(mu_) = 0;
  std::chrono::steady_clock::time_point last_change_ ABSL_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point last_report_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lumen::serve
