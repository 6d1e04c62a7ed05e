// Dispatcher: sends requests to the replicas of a deployment, in proxies
// and in deployment handles alike. It runs DispatcherCore (the state
// machine: routers, queues, deadlines, resending a lost replica's requests;
// see dispatcher_core.h) on an event loop of its own, together with the
// data-plane connections to replicas (channel.h), so a request crosses no
// lock: the caller's thread posts it to the loop, the loop picks a replica
// and writes it, reads the answer and hands it to `done`.
//
// Tables come from the controller (SetTable, pushed) and, with `read_kv`,
// from the GCS KV: an application not known yet is fetched (asynchronously)
// while its requests wait, known ones are read again every `refresh_ms`,
// and with `discover_apps` the list of applications too (node proxies).
//
// Thread-safe. `done` runs on the dispatcher's loop: keep it short (post
// real work elsewhere). Match() and Tables() read a snapshot and never wait
// for the loop.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/event_loop.h"
#include "lumen/serve.h"
#include "serve/dispatcher_core.h"
#include "serve/route_table.h"

namespace lumen::serve {

// What an ingress knows of a deployment's requests, for the controller's
// autoscaling (queued here, in flight from here).
struct IngressLoad {
  std::string deployment;
  int64_t queued = 0;
  int64_t ongoing = 0;
  MSGPACK_DEFINE(deployment, queued, ongoing);
};

// What an ingress needs of an application to route a request to it.
struct AppRoute {
  struct Deployment {
    double request_timeout_s = 60;
    bool exposed = false;
    std::vector<std::string> models;  // lumen.Model deployments: what they serve
    int replicas = 0;                 // running now
    std::string unavailable;          // why none can run, if so
    bool operator==(const Deployment&) const = default;
  };
  std::string app;
  std::string route_prefix;
  std::string ingress;
  std::map<std::string, Deployment> deployments;

  // `path` (which the route prefix matches) without the prefix; "/" at least.
  std::string PathBelowPrefix(const std::string& path) const;
  // Whether ingresses may call `deployment` by name.
  bool Reachable(const std::string& deployment) const;
};
using AppRoutes = std::vector<std::shared_ptr<const AppRoute>>;

class Dispatcher {
 public:
  struct Options {
    int64_t refresh_ms = 1'000;  // read known tables again this often
    bool read_kv = true;         // false: only SetTable (tests)
    // Also learn which applications exist (kAppsKey) every refresh_ms: a
    // proxy routes by prefix to apps it has not been asked for by name.
    bool discover_apps = false;
    int max_attempts = 3;
    Clock* clock = nullptr;     // default: the real clock
    ConnectionFactory connect;  // default: data-plane channels (channel.h)
    // Load of each app's deployments, every `load_period_ms` while there is
    // any, and at once when requests wait for a deployment that has no
    // replica (scale from zero). Runs on the loop.
    std::function<void(const std::string& app, const std::vector<IngressLoad>& load)> on_load;
    int64_t load_period_ms = 500;
  };
  using Done = std::function<void(absl::StatusOr<Response>)>;
  using Counters = DispatcherCore::Counters;

  explicit Dispatcher(Options options);
  ~Dispatcher();  // answers what waits CANCELLED

  // `timeout_ms` < 0: the deployment's request_timeout_s.
  void Send(const std::string& app, const std::string& deployment, Request request, Done done,
            int64_t timeout_ms = -1);
  void SetTable(const RouteTable& table);
  void RemoveApp(const std::string& app);

  // The app whose route prefix is the longest prefix of `path`; nullptr
  // when none matches.
  std::shared_ptr<const AppRoute> Match(const std::string& path) const;
  std::shared_ptr<const AppRoute> Find(const std::string& app) const;
  AppRoutes Apps() const;
  // The application and deployment that serve model `name`, if any.
  std::optional<std::pair<std::shared_ptr<const AppRoute>, std::string>> FindModel(
      const std::string& name) const;
  // By application and deployment; waits for the loop (up to a second).
  std::map<std::pair<std::string, std::string>, Counters> CountersByDeployment() const;

  EventLoop* loop() { return &loop_; }

  // The process-wide dispatcher of deployment handles.
  static Dispatcher& Default();

 private:
  void OnLoop(const char* name, std::function<void()> fn);
  // After every change: re-arm the deadline timer, fetch wanted tables,
  // report starved deployments, refresh the snapshot.
  void AfterChange();
  void Fetch(const std::string& app);
  void Refresh();
  void ReportLoad(bool starved_only);

  Options options_;
  EventLoop loop_;
  std::unique_ptr<DispatcherCore> core_;  // loop only
  std::unique_ptr<OneShotTimer> deadline_timer_;
  std::optional<int64_t> armed_for_;  // the deadline the timer is set for
  std::unique_ptr<PeriodicTimer> refresh_timer_;
  std::unique_ptr<PeriodicTimer> load_timer_;
  std::set<std::string> fetching_;  // apps whose table is being read
  // Answers of asynchronous calls reach the loop through it, and are
  // dropped once the dispatcher is going.
  std::shared_ptr<LoopGuard> guard_;

  mutable absl::Mutex snapshot_mu_;
  std::shared_ptr<const AppRoutes> snapshot_ ABSL_GUARDED_BY(snapshot_mu_);
};

}  // namespace lumen::serve
