// DispatcherCore: the dispatcher's state machine (see dispatcher.h for the
// thread-safe face that proxies and handles use). Per deployment it keeps
// the routing table's replicas, a router, and a FIFO queue of requests
// waiting for a free slot (bounded by max_queued_requests: beyond it
// UNAVAILABLE, which proxies answer 503). It is the one place that answers
// a request: with the replica's answer, DEADLINE_EXCEEDED once the
// request's deadline passed (queued or sent), UNAVAILABLE when the queue is
// full or the deployment cannot run at all (its table says why, e.g. no
// node has the resources), NOT_FOUND for an unknown application. A request
// whose replica was lost (UNAVAILABLE/ABORTED from the connection) is sent
// again to another replica, up to `max_attempts`, so losing a replica fails
// no request.
//
// Single-threaded: every method runs on the owner's thread (the
// Dispatcher's event loop, or a test's), and so does every `done`. Time
// comes from the Clock; the owner calls Expire() at NextDeadline().
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "lumen/serve.h"
#include "serve/replica_connection.h"
#include "serve/route_table.h"

namespace lumen::serve {

class DispatcherCore {
 public:
  using Done = std::function<void(absl::StatusOr<Response>)>;
  struct Options {
    int max_attempts = 3;
    // A replica whose connection failed is skipped this long, even if a
    // table published before the controller noticed still names it.
    int64_t down_ms = 2'000;
    // Requests that wait for the table of an application not known yet.
    size_t max_waiting_for_tables = 1'000;
  };
  struct Counters {
    size_t queued = 0;
    int ongoing = 0;
    size_t replicas = 0;
  };

  DispatcherCore(Options options, Clock* clock, ConnectionFactory connect);
  ~DispatcherCore();  // answers what waits CANCELLED

  // `timeout_ms` < 0: the deployment's request_timeout_s. For an app with
  // no table yet the request waits (up to its timeout) until SetTable or
  // AppMissing; the owner fetches the tables that WantedTables() names.
  void Send(const std::string& app, const std::string& deployment, Request request, Done done,
            int64_t timeout_ms = -1);
  // A newer table replaces the app's (an older version is ignored).
  void SetTable(const RouteTable& table);
  // The app does not exist (deleted, or never deployed): what waits for it
  // is answered NOT_FOUND.
  void AppMissing(const std::string& app);

  // Answers what passed its deadline; call at NextDeadline().
  void Expire();
  std::optional<int64_t> NextDeadline() const;
  // Apps whose requests wait for a table (fetch them); cleared as read.
  std::vector<std::string> TakeWantedTables();
  // Deployments that have requests waiting and no replica to take them
  // (the controller should start one now); cleared as read.
  std::vector<std::pair<std::string, std::string>> TakeStarved();

  bool Knows(const std::string& app) const;
  int64_t TableAgeMs(const std::string& app) const;  // -1 when unknown
  std::vector<RouteTable> Tables() const;
  std::map<std::pair<std::string, std::string>, Counters> CountersByDeployment() const;
  size_t connections() const { return conns_.size(); }

 private:
  struct Pending {
    uint64_t seq = 0;
    std::string app;
    std::string deployment;
    Request request;
    Done done;
    int64_t deadline_ms = 0;
    int attempts = 0;
    bool answered = false;
  };
  using PendingPtr = std::shared_ptr<Pending>;
  struct Deployment {
    DeploymentRoute route;  // its replicas by router index
    std::unique_ptr<Router> router;
    std::deque<PendingPtr> queue;
    int in_flight = 0;  // sent and not answered by the replica yet
  };
  struct App {
    RouteTable table;
    bool known = false;  // a table came
    int64_t fetched_ms = 0;
    std::map<std::string, Deployment> deployments;
    std::deque<PendingPtr> waiting;  // for the first table
  };

  void Enqueue(App& app, const PendingPtr& p);
  void Pump(const std::string& app, const std::string& deployment);
  // Multiplexed models: the least busy replica, not full, that has `model`
  // loaded (as it last reported); -1 when none (the router picks, and that
  // replica loads it).
  static int PreferLoaded(const Deployment& d, const std::string& model);
  void OnAnswer(const PendingPtr& p, const std::string& replica, const std::string& address,
                absl::StatusOr<Response> result);
  void Answer(const PendingPtr& p, absl::StatusOr<Response> result);
  ReplicaConnection* ConnectionTo(const std::string& address);
  void DropIdleConnections();
  void ApplyRoute(Deployment& d, const DeploymentRoute& route);
  // Runs answers that arrived inside Call (a broken connection) once the
  // caller is done changing state.
  void RunDeferred();

  Options options_;
  Clock* clock_;
  ConnectionFactory connect_;
  uint64_t next_seq_ = 1;
  std::map<std::string, App> apps_;
  std::map<std::string, std::unique_ptr<ReplicaConnection>> conns_;  // by address
  std::map<std::string, int64_t> down_until_ms_;                     // by address
  std::map<uint64_t, PendingPtr> live_;                              // not answered yet
  std::set<std::pair<int64_t, uint64_t>> deadlines_;                 // (deadline, seq)
  std::set<std::string> wanted_tables_;
  std::set<std::pair<std::string, std::string>> starved_;
  size_t waiting_for_tables_ = 0;
  int pumping_ = 0;  // depth of Pump calls: answers inside them are deferred
  std::vector<std::function<void()>> deferred_;
};

}  // namespace lumen::serve
