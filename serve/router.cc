// Routers; see router.h.
#include "serve/router.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

namespace lumen::serve {

void Router::SetReplicas(const std::vector<std::string>& ids, int64_t now_ms) {
  std::vector<Replica> next;
  next.reserve(ids.size());
  for (const auto& id : ids) {
    auto old = std::find_if(replicas_.begin(), replicas_.end(),
                            [&](const Replica& r) { return r.id == id; });
    if (old != replicas_.end()) {
      next.push_back(*old);
    } else {
      Replica r;
      r.id = id;
      r.added_ms = now_ms;
      next.push_back(r);
    }
  }
  replicas_ = std::move(next);
  OnReplicasChanged(now_ms);
}

double SwrrWeight(const ReplicaLoad& load, int max_ongoing, double fallback_capacity) {
  max_ongoing = std::max(max_ongoing, 1);
  double capacity = load.completed_per_s > 0 ? load.completed_per_s / std::max(load.ongoing, 1e-3)
                                             : fallback_capacity;
  double utilisation = std::clamp(load.ongoing / max_ongoing, 0.0, 1.0);
  double remaining = 1.0 - utilisation;
  double room = std::max(std::log1p((std::exp(1.0) - 1.0) * remaining), 0.05);
  return capacity * room / max_ongoing;
}

namespace {

// Round robin over replicas with a free slot.
class RoundRobin : public Router {
 public:
  using Router::Router;
  int Pick(const std::string&, int64_t) override {
    for (size_t tried = 0; tried < replicas_.size(); ++tried) {
      int i = static_cast<int>(next_++ % replicas_.size());
      if (Free(i)) return i;
    }
    return -1;
  }

 private:
  size_t next_ = 0;
};

// Power of two choices on the local in-flight counts.
class PowerOfTwo : public Router {
 public:
  PowerOfTwo(int max_ongoing, uint64_t seed) : Router(max_ongoing), rng_(seed) {}
  int Pick(const std::string&, int64_t) override {
    int n = static_cast<int>(replicas_.size());
    if (n == 0) return -1;
    if (n == 1) return Free(0) ? 0 : -1;
    std::uniform_int_distribution<int> any(0, n - 1);
    int a = any(rng_);
    int b = any(rng_);
    if (b == a) b = (a + 1) % n;
    int best = replicas_[a].ongoing <= replicas_[b].ongoing ? a : b;
    if (Free(best)) return best;
    // Both full: the least loaded of all, if any has room.
    int least = LeastLoaded();
    return least >= 0 && Free(least) ? least : -1;
  }

 protected:
  // Ties go to the first from `start` on (callers rotate it, so equal
  // replicas share the work instead of the first taking it all).
  int LeastLoaded(size_t start = 0) const {
    int best = -1;
    int n = static_cast<int>(replicas_.size());
    for (int k = 0; k < n; ++k) {
      int i = static_cast<int>((start + k) % n);
      if (best < 0 || replicas_[i].ongoing < replicas_[best].ongoing) best = i;
    }
    return best;
  }
  std::mt19937_64 rng_;
};

// Pull-based: requests wait in the caller's queue and go to whichever
// replica has the most free slots the moment one frees.
class PullQueue : public PowerOfTwo {
 public:
  using PowerOfTwo::PowerOfTwo;
  int Pick(const std::string&, int64_t) override {
    int least = LeastLoaded(next_++);
    return least >= 0 && Free(least) ? least : -1;
  }

 private:
  size_t next_ = 0;
};

// nginx's smooth weighted round robin with weights from reported load.
class SmoothWeighted : public Router {
 public:
  SmoothWeighted(const RouterOptions& o) : Router(o.max_ongoing), options_(o) {}
  int Pick(const std::string&, int64_t now_ms) override {
    if (replicas_.empty()) return -1;
    if (now_ms - weighed_at_ms_ >= options_.weight_period_ms) Reweigh(now_ms);
    double total = 0;
    int best = -1;
    for (int i = 0; i < static_cast<int>(replicas_.size()); ++i) {
      if (!Free(i)) continue;
      Replica& r = replicas_[i];
      r.current += r.weight;
      total += r.weight;
      if (best < 0 || r.current > replicas_[best].current) best = i;
    }
    if (best >= 0) replicas_[best].current -= total;
    return best;
  }
  void Report(const std::string& id, const ReplicaLoad& load) override {
    for (auto& r : replicas_) {
      if (r.id == id) r.load = load;
    }
  }

 protected:
  void OnReplicasChanged(int64_t now_ms) override { Reweigh(now_ms); }

 private:
  void Reweigh(int64_t now_ms) {
    weighed_at_ms_ = now_ms;
    auto fresh = [&](const Replica& r) {
      return r.load.reported_at_ms > 0 && now_ms - r.load.reported_at_ms <= options_.report_ttl_ms;
    };
    // Replicas that did no work lately take the mean capacity of the others.
    double sum = 0;
    int known = 0;
    for (const auto& r : replicas_) {
      if (fresh(r) && r.load.completed_per_s > 0) {
        sum += r.load.completed_per_s / std::max(r.load.ongoing, 1e-3);
        known++;
      }
    }
    double fallback = known > 0 ? sum / known : 1.0;
    for (auto& r : replicas_) {
      ReplicaLoad load = fresh(r) ? r.load : ReplicaLoad{};  // stale: as if unknown
      double w = SwrrWeight(load, max_ongoing_, fallback);
      double age = static_cast<double>(now_ms - r.added_ms);
      if (options_.ramp_ms > 0 && age < options_.ramp_ms) {  // new: ramp up
        w *= std::max(0.1, age / options_.ramp_ms);
      }
      r.weight = std::max(w, 1e-9);
    }
  }

  RouterOptions options_;
  int64_t weighed_at_ms_ = 0;
};

// Consistent hashing of the key onto a ring of virtual points per replica.
class ConsistentHash : public Router {
 public:
  using Router::Router;
  int Pick(const std::string& key, int64_t) override {
    if (ring_.empty()) return -1;
    auto it = ring_.lower_bound(std::hash<std::string>()(key));
    if (it == ring_.end()) it = ring_.begin();
    // A shard's requests wait for their own replica rather than go elsewhere.
    return Free(it->second) ? it->second : -1;
  }

 protected:
  void OnReplicasChanged(int64_t) override {
    ring_.clear();
    for (int i = 0; i < static_cast<int>(replicas_.size()); ++i) {
      for (int v = 0; v < kPoints; ++v) {
        ring_[std::hash<std::string>()(replicas_[i].id + "#" + std::to_string(v))] = i;
      }
    }
  }

 private:
  static constexpr int kPoints = 64;
  std::map<size_t, int> ring_;
};

}  // namespace

const std::vector<std::string>& RouterPolicies() {
  static const std::vector<std::string> kPolicies = {"pow2", "swrr", "queue", "hash", "rr"};
  return kPolicies;
}

absl::StatusOr<std::unique_ptr<Router>> MakeRouter(const std::string& policy,
                                                   const RouterOptions& options) {
  uint64_t seed = options.seed != 0 ? options.seed : std::random_device()();
  if (policy == "pow2" || policy.empty()) {
    return std::unique_ptr<Router>(new PowerOfTwo(options.max_ongoing, seed));
  }
  if (policy == "swrr") return std::unique_ptr<Router>(new SmoothWeighted(options));
  if (policy == "queue") return std::unique_ptr<Router>(new PullQueue(options.max_ongoing, seed));
  if (policy == "hash") return std::unique_ptr<Router>(new ConsistentHash(options.max_ongoing));
  if (policy == "rr") return std::unique_ptr<Router>(new RoundRobin(options.max_ongoing));
  return absl::InvalidArgumentError("unknown router '" + policy +
                                    "': use one of pow2 (default), swrr, queue, hash, rr");
}

}  // namespace lumen::serve
