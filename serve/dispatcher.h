// Dispatcher: sends requests to the replicas of a deployment, in proxies
// and in deployment handles alike. Per deployment it keeps the routing
// table's replicas, the router, and a FIFO queue of requests waiting for a
// free slot (bounded by max_queued_requests: beyond it UNAVAILABLE, which
// proxies answer 503). A request past its timeout is answered
// DEADLINE_EXCEEDED (504). A request whose replica died is sent again to
// another replica (up to `max_attempts`), so a replica's loss fails no
// request. Tables come from the controller (SetTable) or from the GCS KV,
// read again when older than `refresh_ms`.
//
// Requests go to a replica over its data plane (channel.h). A request sent
// and not answered by its timeout is answered DEADLINE_EXCEEDED (504) too.
//
// Thread-safe. Answers run on the dispatcher's own thread, a channel's
// reader, or (for a connection already lost) the sending thread; never
// under its lock; keep them short.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "lumen/internal/runtime.h"
#include "lumen/serve.h"
#include "serve/route_table.h"

namespace lumen::serve {

class ReplicaChannel;

class Dispatcher {
 public:
  struct Options {
    int64_t refresh_ms = 1'000;  // read the KV table again when older
    bool read_kv = true;         // false: only SetTable (tests, the controller's proxy)
    // Also learn which applications exist (kAppsKey), every refresh_ms: a
    // proxy routes by prefix to apps it has not been asked for by name.
    bool discover_apps = false;
    int max_attempts = 3;
  };
  using Done = std::function<void(absl::StatusOr<Response>)>;
  // Counters for /metrics.
  struct DeploymentCounters {
    size_t queued = 0;
    int ongoing = 0;
    size_t replicas = 0;
  };

  explicit Dispatcher(Options options);
  ~Dispatcher();  // answers what waits CANCELLED

  // `timeout_ms` < 0: the deployment's request_timeout_s.
  void Send(const std::string& app, const std::string& deployment, Request request, Done done,
            int64_t timeout_ms = -1);
  void SetTable(const RouteTable& table);
  void RemoveApp(const std::string& app);
  // The app whose route prefix is the longest prefix of `path`.
  std::optional<RouteTable> Match(const std::string& path) const;
  // By application and deployment.
  std::map<std::pair<std::string, std::string>, DeploymentCounters> Counters() const;
  // Every known table (for the proxy's routes and status).
  std::vector<RouteTable> Tables() const;

  // The process-wide dispatcher of deployment handles.
  static Dispatcher& Default();

 private:
  struct Pending {
    Request request;
    Done done;
    int64_t deadline_ms;
    int attempts = 0;
    std::shared_ptr<std::atomic<bool>> answered = std::make_shared<std::atomic<bool>>(false);
  };
  struct Deployment {
    DeploymentRoute route;  // its replicas by router index
    std::unique_ptr<Router> router;
    std::deque<std::shared_ptr<Pending>> queue;
    std::set<std::shared_ptr<Pending>> in_flight;  // sent, not answered by the replica yet
  };
  struct App {
    RouteTable table;
    int64_t fetched_ms = 0;
    std::map<std::string, Deployment> deployments;
  };
  using Answers = std::vector<std::pair<Done, absl::StatusOr<Response>>>;
  // What to do once mu_ is released.
  struct Outbox {
    Answers answers;
    std::vector<std::function<void()>> sends;
    std::vector<std::shared_ptr<ReplicaChannel>> dropped;  // closed when the outbox goes
  };

  void Refresh(const std::string& app);
  void DiscoverApps();
  void Apply(const RouteTable& table, Outbox* out);     // mu_ held
  void EraseApp(const std::string& app, Answers* out);  // mu_ held
  // Sends what the queue's head can send now; sends and answers collect in `out`.
  void Pump(const std::string& app, const std::string& name, Outbox* out);  // mu_ held
  // The open channel to `address` (made now if there is none or it broke).
  // A broken one goes to `out` (closed once mu_ is released).
  std::shared_ptr<ReplicaChannel> ChannelTo(const std::string& address,
                                            lumen::internal::Runtime* rt,
                                            Outbox* out);  // mu_ held
  void OnAnswer(const std::string& app, const std::string& name, const std::string& replica,
                std::shared_ptr<Pending> p, absl::StatusOr<Response> result);
  // Sends first, then the answers on the done thread.
  void Deliver(Outbox out);
  // Runs `fn` on the done thread, in order with the answers.
  void OnDoneThread(std::function<void()> fn);
  void ExpireLoop();
  static int64_t NowMs();

  Options options_;
  mutable std::mutex mu_;
  std::map<std::string, App> apps_;
  std::map<std::string, std::shared_ptr<ReplicaChannel>> channels_;  // by address
  // Completions run here, in order.
  std::mutex done_mu_;
  std::condition_variable done_cv_;  // the done thread's only
  std::condition_variable stop_cv_;  // wakes the expiry thread to stop
  std::deque<std::function<void()>> done_queue_;
  bool stopping_ = false;
  std::thread done_thread_;
  std::thread expire_thread_;
};

}  // namespace lumen::serve
