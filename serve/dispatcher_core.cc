// The dispatcher's state machine; see dispatcher_core.h.
#include "serve/dispatcher_core.h"

#include <algorithm>

namespace lumen::serve {
namespace {

bool Retryable(const absl::Status& s) {
  // The replica died or could not be reached: the request may go elsewhere.
  return s.code() == absl::StatusCode::kUnavailable || s.code() == absl::StatusCode::kAborted;
}

}  // namespace

DispatcherCore::DispatcherCore(Options options, Clock* clock, ConnectionFactory connect)
    : options_(options), clock_(clock), connect_(std::move(connect)) {}

DispatcherCore::~DispatcherCore() {
  std::vector<PendingPtr> left;
  for (auto& [seq, p] : live_) left.push_back(p);
  for (auto& p : left) Answer(p, absl::CancelledError("the dispatcher is stopping"));
  pumping_++;  // connections answer what they had; nothing is sent again
  conns_.clear();
  pumping_--;
  deferred_.clear();
}

void DispatcherCore::Send(const std::string& app_name, const std::string& deployment,
                          Request request, Done done, int64_t timeout_ms) {
  auto p = std::make_shared<Pending>();
  p->seq = next_seq_++;
  p->app = app_name;
  p->deployment = deployment;
  p->request = std::move(request);
  p->done = std::move(done);
  auto it = apps_.find(app_name);
  if (it == apps_.end() || !it->second.known) {
    // Not known yet: wait for its table (the owner fetches it).
    if (waiting_for_tables_ >= options_.max_waiting_for_tables) {
      p->done(absl::UnavailableError("too many requests wait for applications not known yet"));
      return;
    }
    App& app = apps_[app_name];
    p->deadline_ms = clock_->NowMs() + (timeout_ms >= 0 ? timeout_ms : 60'000);
    live_[p->seq] = p;
    deadlines_.insert({p->deadline_ms, p->seq});
    app.waiting.push_back(p);
    waiting_for_tables_++;
    wanted_tables_.insert(app_name);
    return;
  }
  App& app = it->second;
  auto d = app.deployments.find(deployment);
  if (d == app.deployments.end()) {
    p->done(absl::NotFoundError("application '" + app_name + "' has no deployment '" + deployment +
                                "'"));
    return;
  }
  int64_t t =
      timeout_ms >= 0 ? timeout_ms : static_cast<int64_t>(d->second.route.request_timeout_s * 1000);
  p->deadline_ms = clock_->NowMs() + t;
  Enqueue(app, p);
  RunDeferred();
}

void DispatcherCore::Enqueue(App& app, const PendingPtr& p) {
  Deployment& d = app.deployments[p->deployment];
  if (d.route.replicas.empty() && !d.route.unavailable.empty()) {
    // It cannot run at all now (no node has what it asks for): say so at
    // once rather than hold the request until its timeout.
    p->answered = true;
    p->done(
        absl::UnavailableError(p->deployment + " has no running replica: " + d.route.unavailable));
    return;
  }
  if (d.route.max_queued >= 0 && d.queue.size() >= static_cast<size_t>(d.route.max_queued)) {
    p->answered = true;
    p->done(absl::UnavailableError(p->deployment + " is full: " + std::to_string(d.queue.size()) +
                                   " requests wait (max_queued_requests); try again shortly"));
    return;
  }
  live_[p->seq] = p;
  deadlines_.insert({p->deadline_ms, p->seq});
  d.queue.push_back(p);
  Pump(p->app, p->deployment);
}

int DispatcherCore::PreferLoaded(const Deployment& d, const std::string& model) {
  if (model.empty()) return -1;
  int best = -1;
  for (int k = 0;
       k < static_cast<int>(d.router->size()) && k < static_cast<int>(d.route.replicas.size());
       ++k) {
    const auto& loaded = d.route.replicas[k].models;
    if (std::find(loaded.begin(), loaded.end(), model) == loaded.end()) continue;
    if (d.router->ongoing(k) >= d.router->max_ongoing()) continue;
    if (best < 0 || d.router->ongoing(k) < d.router->ongoing(best)) best = k;
  }
  return best;
}

void DispatcherCore::Pump(const std::string& app_name, const std::string& deployment) {
  auto a = apps_.find(app_name);
  if (a == apps_.end()) return;
  auto it = a->second.deployments.find(deployment);
  if (it == a->second.deployments.end()) return;
  Deployment& d = it->second;
  pumping_++;
  int64_t now = clock_->NowMs();
  while (!d.queue.empty()) {
    PendingPtr p = d.queue.front();
    if (p->answered) {
      d.queue.pop_front();
      continue;
    }
    int i = PreferLoaded(d, p->request.Header("x-lumen-model"));
    if (i < 0) i = d.router->Pick(p->request.Header(d.route.hash_header), now);
    if (i < 0) break;  // every candidate is full (or there is none): wait
    d.queue.pop_front();
    d.router->Started(i);
    d.in_flight++;
    p->attempts++;
    std::string replica = d.router->id(i);
    std::string address = d.route.replicas[i].address;
    ReplicaConnection* conn = ConnectionTo(address);
    conn->Call(p->request, [this, p, replica, address](absl::StatusOr<Response> result) {
      if (pumping_ > 0) {
        deferred_.push_back([this, p, replica, address, result = std::move(result)]() mutable {
          OnAnswer(p, replica, address, std::move(result));
        });
        return;
      }
      OnAnswer(p, replica, address, std::move(result));
    });
  }
  if (!d.queue.empty() && d.route.replicas.empty()) starved_.insert({app_name, deployment});
  pumping_--;
}

void DispatcherCore::RunDeferred() {
  while (pumping_ == 0 && !deferred_.empty()) {
    auto fns = std::move(deferred_);
    deferred_.clear();
    for (auto& fn : fns) fn();
  }
}

void DispatcherCore::OnAnswer(const PendingPtr& p, const std::string& replica,
                              const std::string& address, absl::StatusOr<Response> result) {
  bool lost = !result.ok() && Retryable(result.status());
  if (lost) down_until_ms_[address] = clock_->NowMs() + options_.down_ms;
  Deployment* d = nullptr;
  if (auto a = apps_.find(p->app); a != apps_.end()) {
    if (auto it = a->second.deployments.find(p->deployment); it != a->second.deployments.end()) {
      d = &it->second;
    }
  }
  if (d != nullptr) {
    d->in_flight = std::max(0, d->in_flight - 1);
    for (int i = 0; i < static_cast<int>(d->router->size()); ++i) {
      if (d->router->id(i) != replica) continue;
      d->router->Finished(i);
      if (lost) {  // gone: route around it until a table says otherwise
        DeploymentRoute route = d->route;
        route.replicas.erase(route.replicas.begin() + i);
        ApplyRoute(*d, route);
      }
      break;
    }
  }
  bool again = d != nullptr && lost && p->attempts < options_.max_attempts && !p->answered &&
               clock_->NowMs() < p->deadline_ms;
  if (again) {
    d->queue.push_front(p);
  } else if (!p->answered) {
    Answer(p, std::move(result));
  }
  if (d != nullptr) Pump(p->app, p->deployment);
  DropIdleConnections();
  RunDeferred();
}

void DispatcherCore::Answer(const PendingPtr& p, absl::StatusOr<Response> result) {
  if (p->answered) return;
  p->answered = true;
  live_.erase(p->seq);
  deadlines_.erase({p->deadline_ms, p->seq});
  Done done = std::move(p->done);
  p->request = Request();  // a queued copy may linger until popped: free the body now
  if (done) done(std::move(result));
}

ReplicaConnection* DispatcherCore::ConnectionTo(const std::string& address) {
  auto& c = conns_[address];
  if (c && c->broken() && c->in_flight() == 0) c.reset();
  if (c && c->broken()) {
    // Still answering its last calls: keep it aside under a unique key.
    conns_["~" + std::to_string(next_seq_++) + "~" + address] = std::move(c);
  }
  if (!c) c = connect_(address);
  return c.get();
}

void DispatcherCore::DropIdleConnections() {
  std::set<std::string> live;
  for (const auto& [name, app] : apps_) {
    for (const auto& [dname, d] : app.deployments) {
      for (const auto& r : d.route.replicas) live.insert(r.address);
    }
  }
  pumping_++;  // a connection's destructor may answer (nothing is in flight, though)
  for (auto it = conns_.begin(); it != conns_.end();) {
    bool idle = it->second->in_flight() == 0;
    if (idle && (!live.count(it->first) || it->second->broken())) {
      it = conns_.erase(it);
    } else {
      ++it;
    }
  }
  pumping_--;
}

void DispatcherCore::ApplyRoute(Deployment& d, const DeploymentRoute& route) {
  int64_t now = clock_->NowMs();
  if (!d.router || d.route.router != route.router || d.route.max_ongoing != route.max_ongoing) {
    RouterOptions ro;
    ro.max_ongoing = route.max_ongoing;
    auto made = MakeRouter(route.router, ro);
    d.router = made.ok() ? std::move(*made) : std::move(*MakeRouter("pow2", ro));
  }
  d.route = route;
  // Replicas whose connection just failed stay out for a moment.
  std::erase_if(d.route.replicas, [&](const ReplicaRoute& r) {
    auto down = down_until_ms_.find(r.address);
    return r.address.empty() || (down != down_until_ms_.end() && now < down->second);
  });
  std::vector<std::string> ids;
  for (const auto& r : d.route.replicas) ids.push_back(r.id);
  d.router->SetReplicas(ids, now);
  for (const auto& r : d.route.replicas) d.router->Report(r.id, r.load);
}

void DispatcherCore::SetTable(const RouteTable& table) {
  App& app = apps_[table.app];
  if (app.known && table.version < app.table.version) return;  // older news
  int64_t now = clock_->NowMs();
  std::erase_if(down_until_ms_, [&](const auto& kv) { return kv.second <= now; });
  for (const auto& [name, route] : table.deployments) ApplyRoute(app.deployments[name], route);
  std::vector<PendingPtr> orphans;  // queued for deployments the app no longer has
  for (auto it = app.deployments.begin(); it != app.deployments.end();) {
    if (table.deployments.count(it->first)) {
      ++it;
      continue;
    }
    for (auto& p : it->second.queue) orphans.push_back(p);
    it = app.deployments.erase(it);
  }
  app.table = table;
  app.known = true;
  app.fetched_ms = now;
  for (auto& p : orphans) {
    Answer(p, absl::NotFoundError("application '" + table.app + "' no longer has deployment '" +
                                  p->deployment + "'"));
  }
  std::deque<PendingPtr> waiting = std::move(app.waiting);
  app.waiting.clear();
  waiting_for_tables_ -= std::min(waiting_for_tables_, waiting.size());
  for (auto& p : waiting) {
    if (p->answered) continue;
    live_.erase(p->seq);
    deadlines_.erase({p->deadline_ms, p->seq});
    if (!app.deployments.count(p->deployment)) {
      p->answered = true;
      p->done(absl::NotFoundError("application '" + table.app + "' has no deployment '" +
                                  p->deployment + "'"));
      continue;
    }
    Enqueue(app, p);
  }
  for (auto& [name, d] : app.deployments) {
    if (d.route.replicas.empty() && !d.route.unavailable.empty()) {
      // Nothing can take what waits: answer it now, naming why.
      std::deque<PendingPtr> queue = std::move(d.queue);
      d.queue.clear();
      for (auto& p : queue) {
        Answer(p, absl::UnavailableError(name + " has no running replica: " + d.route.unavailable));
      }
      continue;
    }
    Pump(table.app, name);
  }
  DropIdleConnections();
  RunDeferred();
}

void DispatcherCore::AppMissing(const std::string& app_name) {
  auto it = apps_.find(app_name);
  if (it == apps_.end()) return;
  std::vector<PendingPtr> doomed(it->second.waiting.begin(), it->second.waiting.end());
  waiting_for_tables_ -= std::min(waiting_for_tables_, it->second.waiting.size());
  for (auto& [name, d] : it->second.deployments) {
    doomed.insert(doomed.end(), d.queue.begin(), d.queue.end());
  }
  apps_.erase(it);
  for (auto& p : doomed) {
    Answer(p, absl::NotFoundError("no application '" + app_name + "' is deployed"));
  }
  DropIdleConnections();
  RunDeferred();
}

void DispatcherCore::Expire() {
  int64_t now = clock_->NowMs();
  std::vector<PendingPtr> due;
  for (auto it = deadlines_.begin(); it != deadlines_.end() && it->first <= now; ++it) {
    due.push_back(live_.at(it->second));
  }
  for (auto& p : due) {
    std::string why;
    auto a = apps_.find(p->app);
    if (a == apps_.end() || !a->second.known) {
      why = "no table of application '" + p->app + "' came within the request's timeout";
      if (a != apps_.end()) {
        std::erase(a->second.waiting, p);
        waiting_for_tables_ -= std::min<size_t>(waiting_for_tables_, 1);
      }
    } else {
      auto d = a->second.deployments.find(p->deployment);
      bool queued =
          d != a->second.deployments.end() &&
          std::find(d->second.queue.begin(), d->second.queue.end(), p) != d->second.queue.end();
      if (queued) {
        std::erase(d->second.queue, p);
        why = "no replica of " + p->deployment + " took the request within its timeout" +
              (d->second.route.replicas.empty() ? " (it has no running replica)" : "");
      } else {
        // Sent: its replica's slot stays taken until the replica answers
        // (or its connection is lost).
        why = "a replica of " + p->deployment + " did not answer within the request's timeout";
      }
    }
    Answer(p, absl::DeadlineExceededError(why));
  }
  RunDeferred();
}

std::optional<int64_t> DispatcherCore::NextDeadline() const {
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
}

std::vector<std::string> DispatcherCore::TakeWantedTables() {
  std::vector<std::string> out(wanted_tables_.begin(), wanted_tables_.end());
  wanted_tables_.clear();
  return out;
}

std::vector<std::pair<std::string, std::string>> DispatcherCore::TakeStarved() {
  std::vector<std::pair<std::string, std::string>> out(starved_.begin(), starved_.end());
  starved_.clear();
  return out;
}

bool DispatcherCore::Knows(const std::string& app) const {
  auto it = apps_.find(app);
  return it != apps_.end() && it->second.known;
}

int64_t DispatcherCore::TableAgeMs(const std::string& app) const {
  auto it = apps_.find(app);
  if (it == apps_.end() || !it->second.known) return -1;
  return clock_->NowMs() - it->second.fetched_ms;
}

std::vector<RouteTable> DispatcherCore::Tables() const {
  std::vector<RouteTable> out;
  for (const auto& [name, app] : apps_) {
    if (app.known) out.push_back(app.table);
  }
  return out;
}

std::map<std::pair<std::string, std::string>, DispatcherCore::Counters>
DispatcherCore::CountersByDeployment() const {
  std::map<std::pair<std::string, std::string>, Counters> out;
  for (const auto& [name, app] : apps_) {
    for (const auto& [dname, d] : app.deployments) {
      size_t queued = 0;
      for (const auto& p : d.queue) queued += !p->answered;
      out[{name, dname}] = {queued, d.in_flight, d.route.replicas.size()};
    }
  }
  return out;
}

}  // namespace lumen::serve
