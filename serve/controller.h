// Controller: reconciles the declared applications into replicas (actors
// placed by their resources) and keeps them so. Each tick it starts and
// stops replicas toward each deployment's target (autoscaled on ongoing
// requests when configured), checks health and load, replaces replicas
// that died or fail their checks, rolls replicas one by one when a
// deployment's code, class, init_args or resources change (the new one
// runs before an old one drains and stops), calls Reconfigure when only
// user_config changes, and publishes each application's routing table
// (GCS KV, and the in-process proxy's dispatcher).
//
// Thread-safe: Apply/Delete/Status from any thread; reconciliation runs on
// the controller's own thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lumen/api.h"
#include "serve/config.h"
#include "serve/dispatcher.h"
#include "serve/replica.h"

namespace lumen::serve {

// A call's answer once it has come (and forgets the call), without waiting.
template <typename T>
std::optional<absl::StatusOr<T>> TakeIfReady(std::optional<ObjectRef<T>>& call) {
  if (!call) return std::nullopt;
  absl::StatusOr<T> answer = Get(*call, 0);
  if (answer.status().code() == absl::StatusCode::kDeadlineExceeded) return std::nullopt;
  call.reset();
  return answer;
}

class Controller {
 public:
  struct Options {
    int64_t tick_ms = 100;
    int64_t stats_period_ms = 500;
    Dispatcher* local = nullptr;  // the in-process proxy's, told at once
    // Also told of every published table (RouteTable JSON; "" when the
    // app is deleted), under the controller's lock: the other nodes'
    // proxies get it pushed (they read the KV too, in case one is missed).
    std::function<void(const std::string& app, const std::string& table)> on_publish;
  };

  explicit Controller(Options options);
  ~Controller();  // stops reconciling and kills every replica

  // Makes the declared applications the running ones: new apps start,
  // changed ones change only in what changed, apps not declared are
  // deleted. The config is checked first; a bad one changes nothing.
  absl::Status Apply(const ServeConfig& config);
  absl::Status Delete(const std::string& app);
  // {"applications": {name: {route_prefix, status, deployments: {name:
  //  {status, message, target, replicas: [{id, state, node}]}}}}}
  Json Status() const;
  // True once every deployment of every app has its target of running
  // replicas of the current version and nothing else.
  bool Settled() const;

 private:
  enum class State { kStarting, kRunning, kStopping };
  struct Replica {
    std::string id;
    ActorHandle<serve::Replica> actor;
    State state = State::kStarting;
    std::string version;
    std::string node;
    std::chrono::steady_clock::time_point since;
    double drain_s = 0;  // stopping: the longest it may take to drain
    ReplicaStats stats;
    std::optional<ObjectRef<ReplicaStats>> stats_call;
    std::chrono::steady_clock::time_point stats_sent;
    std::optional<ObjectRef<bool>> health_call;
    std::chrono::steady_clock::time_point health_sent;
  };
  struct Deployment {
    DeploymentConfig config;
    std::string version;      // of code, class, init_args, resources
    std::string user_config;  // as applied (JSON)
    int target = 1;
    int next_index = 1;
    std::vector<Replica> replicas;
    std::string status = "UPDATING";
    std::string message;
    int start_failures = 0;
    std::chrono::steady_clock::time_point retry_after;
    std::chrono::steady_clock::time_point want_since;  // autoscaling: when `want` began
    int want = -1;
  };
  struct App {
    AppConfig config;
    std::map<std::string, Deployment> deployments;
    int64_t version = 0;
    bool dirty = true;  // the routing table must be published
  };

  void Loop();
  void Tick();
  void Reconcile(App& app, Deployment& d);
  void Start(App& app, Deployment& d);
  // Takes the replica out of the routing table; it is killed once drained,
  // or after `drain_s` (0: at once, it is broken or dead).
  void Stop(App& app, Replica& r, double drain_s);
  // Stops every replica of a deployment that goes away (kept in stopping_).
  void RetireAll(App& app, Deployment& d);
  // Polls a stopping replica; true once it was killed.
  bool Retire(Replica& r);
  void Poll(App& app, Deployment& d, Replica& r);
  void Autoscale(App& app, Deployment& d);
  void Publish(App& app);
  static std::string VersionOf(const AppConfig& app, const DeploymentConfig& d);

  Options options_;
  mutable std::mutex mu_;
  std::map<std::string, App> apps_;
  std::vector<Replica> stopping_;  // deleted apps' replicas, draining
  bool stop_ = false;
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace lumen::serve
