// Routers: which replica of a deployment takes a request. One per
// deployment in each proxy and handle, chosen by name (pow2, swrr, queue,
// hash, rr). Every router knows each replica's requests in flight from its
// own counters (no probe per request) and never picks a replica that is at
// max_ongoing_requests: it answers -1 and the caller queues the request
// until Finished() frees a slot. Not thread-safe: the owner serialises.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace lumen::serve {

// What a replica reported of itself (for swrr).
struct ReplicaLoad {
  double ongoing = 0;          // requests in progress, averaged over the report period
  double completed_per_s = 0;  // throughput over the report period
  int64_t reported_at_ms = 0;  // when the report was taken
};

class Router {
 public:
  explicit Router(int max_ongoing) : max_ongoing_(max_ongoing < 1 ? 1 : max_ongoing) {}
  virtual ~Router() = default;

  // The replicas now (stable ids); counters of kept ids carry over.
  void SetReplicas(const std::vector<std::string>& ids, int64_t now_ms);
  size_t size() const { return replicas_.size(); }
  const std::string& id(int i) const { return replicas_[i].id; }
  int ongoing(int i) const { return replicas_[i].ongoing; }

  // The replica for a request (`key`: the hash key, used by `hash`), or -1
  // when every candidate is full or there are none.
  virtual int Pick(const std::string& key, int64_t now_ms) = 0;
  void Started(int i) { replicas_[i].ongoing++; }
  void Finished(int i) {
    if (replicas_[i].ongoing > 0) replicas_[i].ongoing--;
  }
  virtual void Report(const std::string& id, const ReplicaLoad& load) {}
  int max_ongoing() const { return max_ongoing_; }

 protected:
  struct Replica {
    std::string id;
    int ongoing = 0;
    int64_t added_ms = 0;
    ReplicaLoad load;
    double weight = 1;   // swrr
    double current = 0;  // swrr
  };
  bool Free(int i) const { return replicas_[i].ongoing < max_ongoing_; }
  virtual void OnReplicasChanged(int64_t now_ms) {}

  int max_ongoing_;
  std::vector<Replica> replicas_;
};

struct RouterOptions {
  int max_ongoing = 8;
  uint64_t seed = 0;  // 0: random
  // swrr: how often weights are recomputed, how long a new replica ramps
  // up, and when a report is too old to use.
  int64_t weight_period_ms = 2'000;
  int64_t ramp_ms = 10'000;
  int64_t report_ttl_ms = 10'000;
};

// INVALID_ARGUMENT naming the known policies for an unknown one.
absl::StatusOr<std::unique_ptr<Router>> MakeRouter(const std::string& policy,
                                                   const RouterOptions& options);
const std::vector<std::string>& RouterPolicies();

// swrr's weight for one replica, our reading of
// capacity × log(remaining utilisation) × (utilisation / concurrency):
//   capacity  = completed_per_s / ongoing (work done per busy slot, i.e.
//               1 / latency); `fallback_capacity` when it reported no work;
//   remaining = 1 − ongoing / max_ongoing, through ln(1 + (e − 1) × r) so it
//               stays in [0, 1] and falls fast only near full (floor 0.05);
//   utilisation / concurrency = 1 / max_ongoing (the same for every replica
//               of a deployment, kept so weights compare across sizes).
double SwrrWeight(const ReplicaLoad& load, int max_ongoing, double fallback_capacity);

}  // namespace lumen::serve
