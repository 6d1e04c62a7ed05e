// ControllerCore: one application's reconciler, the state machine inside
// its controller actor (app_controller.h). Each Tick it starts and stops
// replicas toward each deployment's target (autoscaled on ongoing and
// queued requests when configured), checks health and load, replaces
// replicas that died or fail their checks, rolls replicas one by one when a
// deployment's version changes (code, class, init_args, resources, limits:
// the new one runs before an old one drains and stops), calls Reconfigure
// when only user_config changes, and publishes the routing table when it
// changed. A restarted controller adopts the replicas that still run
// (Adopt) before it reconciles, so a controller's death restarts nothing.
//
// Single-threaded: every method, and every callback the ReplicaOps deliver,
// runs on the owner's thread (the controller actor's event loop, or a
// test's). Time comes from the Clock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "lumen/serve.h"
#include "serve/config.h"
#include "serve/dispatcher.h"
#include "serve/replica.h"
#include "serve/route_table.h"

namespace lumen::serve {

// What it takes to start one replica.
struct ReplicaSpec {
  std::string app;
  std::string deployment;
  std::string id;  // "Echo#3"
  std::string cls;
  std::string init_args_json;
  std::string user_config_json;
  std::string options_json;  // replica options (replica.h)
  std::map<std::string, double> resources;
  std::string version;
};

// The engine's word on a replica's actor.
struct ReplicaActorState {
  enum class Kind { kPending, kAlive, kRestarting, kDead };
  Kind kind = Kind::kPending;
  std::string reason;  // why it waits (pending), or why it died
};

// The engine behind the controller. Each `done` must run on the
// controller's thread, exactly once (the real one posts to its loop).
class ReplicaOps {
 public:
  virtual ~ReplicaOps() = default;
  // Starts creating the replica's actor; returns a handle for the others.
  virtual std::string Start(const ReplicaSpec& spec) = 0;
  // Answered once the replica runs (or failed to start).
  virtual void Stats(const std::string& handle,
                     std::function<void(absl::StatusOr<ReplicaStats>)> done) = 0;
  virtual void Health(const std::string& handle,
                      std::function<void(absl::StatusOr<bool>)> done) = 0;
  // "" when applied, else why not.
  virtual void Reconfigure(const std::string& handle, const std::string& user_config_json,
                           std::function<void(absl::StatusOr<std::string>)> done) = 0;
  virtual void State(const std::string& handle,
                     std::function<void(absl::StatusOr<ReplicaActorState>)> done) = 0;
  virtual void Kill(const std::string& handle) = 0;
};

// A replica found running when the controller (re)started.
struct FoundReplica {
  std::string handle;
  ReplicaStats stats;  // its own word: app, deployment, id, version, address
};

class ControllerCore {
 public:
  struct Options {
    int64_t stats_period_ms = 500;
    // Proxies elsewhere may route to a replica for this long after it left
    // the table (they read pushes and the KV); it is stopped only then.
    int64_t table_spread_ms = 1'500;
    // How often a starting replica's placement is asked about.
    int64_t state_period_ms = 1'000;
    // Ingress load reports older than this are ignored.
    int64_t load_ttl_ms = 3'000;
  };
  // `publish` gets each table to publish (GCS KV, proxies).
  ControllerCore(std::string app, Options options, Clock* clock, ReplicaOps* ops,
                 std::function<void(const RouteTable&)> publish);
  ~ControllerCore();

  const std::string& app() const { return app_; }
  // Makes `config` the app's declared state: only what changed changes.
  absl::Status Apply(const AppConfig& config);
  // Replicas found running at start: kept (running) when their deployment
  // is declared (by the next Apply, when none was yet; an older version is
  // rolled like any other), else stopped.
  void Adopt(const std::vector<FoundReplica>& found);
  // Stops every replica (the app is deleted); Deleted() once all are gone.
  void Delete();
  bool Deleted() const;
  void Tick();
  // Requests an ingress holds for this app's deployments (autoscaling;
  // queued requests for a deployment at zero replicas start one at once).
  void OnIngressLoad(const std::string& source, const std::vector<IngressLoad>& load);

  // {route_prefix, ingress, status, deployments: {name: {status, message,
  //  target, router, replicas: [{id, state, node, address, ongoing,
  //  current_version}]}}}
  Json Status() const;
  // Every deployment has its target of running current replicas, nothing else.
  bool Settled() const;

  static std::string VersionOf(const AppConfig& app, const DeploymentConfig& d);

 private:
  enum class State { kStarting, kRunning, kStopping };
  struct Replica {
    std::string id;
    std::string handle;
    State state = State::kStarting;
    std::string version;
    std::string node;
    int64_t since_ms = 0;
    int64_t drain_ms = 0;  // stopping: the longest it may take to drain
    ReplicaStats stats;
    bool stats_pending = false;
    int64_t stats_sent_ms = 0;
    bool health_pending = false;
    int64_t health_sent_ms = 0;
    bool state_pending = false;
    int64_t state_sent_ms = 0;
    std::string pending_reason;  // starting: why the engine cannot place it yet
    bool drained_seen = false;   // stopping: a Stats after the stop showed none in flight
    int index = 0;               // adopted: the number in its id
  };
  using ReplicaPtr = std::unique_ptr<Replica>;
  struct Deployment {
    DeploymentConfig config;
    std::string version;      // VersionOf
    std::string user_config;  // as applied (JSON)
    int target = 1;
    int next_index = 1;
    std::vector<ReplicaPtr> replicas;
    std::string status = "UPDATING";
    std::string message;
    int start_failures = 0;
    int64_t retry_after_ms = 0;
    int want = -1;  // autoscaling: the target wanted, since want_since_ms
    int64_t want_since_ms = 0;
  };
  struct LoadReport {
    std::vector<IngressLoad> load;
    int64_t at_ms = 0;
  };

  Replica* Find(const std::string& id);
  Deployment* DeploymentOf(const std::string& replica_id);
  void Poll(Deployment& d, Replica& r);
  void Autoscale(Deployment& d);
  void Reconcile(Deployment& d);
  void StartReplica(Deployment& d);
  // Takes the replica out of the routing table; it is killed once drained,
  // or after `drain_ms` (0: at once, it is broken or dead).
  void Stop(Replica& r, int64_t drain_ms);
  // Polls a stopping replica; true once it was killed.
  bool Retire(Replica& r);
  void RetireAll(Deployment& d);
  void SendStats(Replica& r);
  void OnStats(const std::string& id, absl::StatusOr<ReplicaStats> s);
  void OnHealth(const std::string& id, absl::StatusOr<bool> h);
  void OnState(const std::string& id, absl::StatusOr<ReplicaActorState> s);
  void Publish();
  // Adopted replicas join their declared deployment, or are stopped.
  void Claim();
  std::string Unavailable(const Deployment& d) const;

  std::string app_;
  Options options_;
  Clock* clock_;
  ReplicaOps* ops_;
  std::function<void(const RouteTable&)> publish_;
  AppConfig config_;
  bool configured_ = false;
  bool deleted_ = false;
  std::map<std::string, Deployment> deployments_;
  std::vector<ReplicaPtr> retiring_;         // replicas of deployments that went away
  std::vector<ReplicaPtr> unclaimed_;        // adopted before the config was applied
  std::map<std::string, LoadReport> loads_;  // by source
  int64_t table_version_ = 0;
  bool dirty_ = true;  // the routing table must be published
  std::string last_published_;
};

}  // namespace lumen::serve
