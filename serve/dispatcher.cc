// The dispatcher; see dispatcher.h.
#include "serve/dispatcher.h"

#include <algorithm>
#include <set>

#include "lumen/api.h"
#include "serve/channel.h"
#include "serve/replica.h"

namespace lumen::serve {
namespace {

bool Retryable(const absl::Status& s) {
  // The replica died or could not be reached: the request may go elsewhere.
  return s.code() == absl::StatusCode::kUnavailable || s.code() == absl::StatusCode::kAborted;
}

}  // namespace

int64_t Dispatcher::NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Dispatcher::Dispatcher(Options options) : options_(options) {
  done_thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(done_mu_);
    while (true) {
      done_cv_.wait(lock, [&] { return stopping_ || !done_queue_.empty(); });
      if (done_queue_.empty()) return;  // stopping and drained
      auto fn = std::move(done_queue_.front());
      done_queue_.pop_front();
      lock.unlock();
      fn();
      lock.lock();
    }
  });
  expire_thread_ = std::thread([this] { ExpireLoop(); });
}

Dispatcher::~Dispatcher() {
  Answers out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [name, app] : apps_) {
      for (auto& [dname, d] : app.deployments) {
        for (auto& p : d.queue) {
          if (!p->answered->exchange(true)) {
            out.emplace_back(p->done, absl::CancelledError("the serve runtime is stopping"));
          }
        }
        d.queue.clear();
      }
    }
  }
  Deliver({.answers = std::move(out)});
  std::map<std::string, std::shared_ptr<ReplicaChannel>> channels;
  {
    std::lock_guard<std::mutex> lock(mu_);
    channels.swap(channels_);
  }
  channels.clear();  // what is in flight is answered CANCELLED
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  expire_thread_.join();  // first: it may still hand answers to the done thread
  done_cv_.notify_all();
  done_thread_.join();
}

Dispatcher& Dispatcher::Default() {
  static Dispatcher* d = new Dispatcher(Options{});  // lives to the end of the process
  return *d;
}

void Dispatcher::OnDoneThread(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    done_queue_.push_back(std::move(fn));
  }
  done_cv_.notify_one();
}

void Dispatcher::Deliver(Outbox out) {
  for (auto& send : out.sends) send();
  for (auto& [done, result] : out.answers) {
    OnDoneThread([done = std::move(done), result = std::move(result)] { done(result); });
  }
}

void Dispatcher::Refresh(const std::string& app) {
  lumen::internal::Runtime* rt = lumen::internal::CurrentRuntime();
  if (rt == nullptr) return;
  auto got = rt->KvGet(kServeKvNamespace, RoutesKey(app));
  Outbox out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!got.ok()) return;                       // keep what we have; try again next time
    if (!got->has_value() || (*got)->empty()) {  // never deployed, or deleted
      EraseApp(app, &out.answers);
    } else if (auto table = RouteTable::FromJson(**got); table.ok()) {
      Apply(*table, &out);
      apps_[app].fetched_ms = NowMs();
      for (auto& [name, d] : apps_[app].deployments) Pump(app, name, &out);
    }
  }
  Deliver(std::move(out));
}

void Dispatcher::DiscoverApps() {
  lumen::internal::Runtime* rt = lumen::internal::CurrentRuntime();
  if (rt == nullptr) return;
  auto got = rt->KvGet(kServeKvNamespace, kAppsKey);
  if (!got.ok() || !got->has_value()) return;
  std::set<std::string> listed;
  try {
    for (const auto& name : Json::parse(**got)) listed.insert(name.get<std::string>());
  } catch (const std::exception&) {
    return;  // not written by a controller of this version: keep what we have
  }
  Answers out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> gone;
    for (const auto& [name, app] : apps_) {
      if (!listed.count(name)) gone.push_back(name);
    }
    for (const auto& name : gone) EraseApp(name, &out);
  }
  Deliver({.answers = std::move(out)});
  for (const auto& name : listed) Refresh(name);
}

void Dispatcher::SetTable(const RouteTable& table) {
  Outbox out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Apply(table, &out);
    apps_[table.app].fetched_ms = NowMs();
    for (auto& [name, d] : apps_[table.app].deployments) Pump(table.app, name, &out);
  }
  Deliver(std::move(out));
}

void Dispatcher::RemoveApp(const std::string& app) {
  Answers out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    EraseApp(app, &out);
  }
  Deliver({.answers = std::move(out)});
}

void Dispatcher::EraseApp(const std::string& app, Answers* out) {
  auto it = apps_.find(app);
  if (it == apps_.end()) return;
  for (auto& [name, d] : it->second.deployments) {
    for (auto& p : d.queue) {
      if (!p->answered->exchange(true)) {
        out->emplace_back(p->done, absl::NotFoundError("application '" + app + "' was deleted"));
      }
    }
  }
  apps_.erase(it);
}

void Dispatcher::Apply(const RouteTable& table, Outbox* out) {
  App& app = apps_[table.app];
  if (table.version < app.table.version) return;  // older news
  int64_t now = NowMs();
  for (auto& [name, route] : table.deployments) {
    Deployment& d = app.deployments[name];
    if (!d.router || d.route.router != route.router || d.route.max_ongoing != route.max_ongoing) {
      RouterOptions ro;
      ro.max_ongoing = route.max_ongoing;
      auto made = MakeRouter(route.router, ro);
      d.router = made.ok() ? std::move(*made) : std::move(*MakeRouter("pow2", ro));
    }
    d.route = route;
    std::vector<std::string> ids;
    for (const auto& r : route.replicas) ids.push_back(r.id);
    d.router->SetReplicas(ids, now);
    for (const auto& r : route.replicas) d.router->Report(r.id, r.load);
  }
  for (auto it = app.deployments.begin(); it != app.deployments.end();) {
    if (table.deployments.count(it->first)) {
      ++it;
    } else {
      it = app.deployments.erase(it);  // waiting requests expire by their deadline
    }
  }
  app.table = table;
  // Close the channels to replicas no table names any more, once their
  // calls are answered (a replica being drained finishes what it has).
  std::set<std::string> live;
  for (const auto& [name, a] : apps_) {
    for (const auto& [dname, d] : a.deployments) {
      for (const auto& r : d.route.replicas) live.insert(r.address);
    }
  }
  for (auto it = channels_.begin(); it != channels_.end();) {
    // An outbox made under mu_ may hold it for a send not made yet.
    if (live.count(it->first) || it->second->in_flight() > 0 || it->second.use_count() > 1) {
      ++it;
    } else {
      out->dropped.push_back(std::move(it->second));
      it = channels_.erase(it);
    }
  }
}

std::shared_ptr<ReplicaChannel> Dispatcher::ChannelTo(const std::string& address,
                                                      lumen::internal::Runtime* rt, Outbox* out) {
  std::shared_ptr<ReplicaChannel>& c = channels_[address];
  if (c && c->broken()) out->dropped.push_back(std::move(c));  // closed outside mu_
  if (!c) c = std::make_shared<ReplicaChannel>(address, rt->ClusterToken());
  return c;
}

std::optional<RouteTable> Dispatcher::Match(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  const RouteTable* best = nullptr;
  for (const auto& [name, app] : apps_) {
    const std::string& prefix = app.table.route_prefix;
    if (prefix.empty()) continue;
    bool matches = prefix == "/" || path == prefix ||
                   (path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0 &&
                    (prefix.back() == '/' || path[prefix.size()] == '/'));
    if (matches && (best == nullptr || prefix.size() > best->route_prefix.size())) {
      best = &app.table;
    }
  }
  if (best == nullptr) return std::nullopt;
  return *best;
}

std::vector<RouteTable> Dispatcher::Tables() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<RouteTable> out;
  for (const auto& [name, app] : apps_) out.push_back(app.table);
  return out;
}

std::map<std::pair<std::string, std::string>, Dispatcher::DeploymentCounters> Dispatcher::Counters()
    const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::pair<std::string, std::string>, DeploymentCounters> out;
  for (const auto& [name, app] : apps_) {
    for (const auto& [dname, d] : app.deployments) {
      out[{name, dname}] = {d.queue.size(), static_cast<int>(d.in_flight.size()),
                            d.route.replicas.size()};
    }
  }
  return out;
}

void Dispatcher::Send(const std::string& app, const std::string& deployment, Request request,
                      Done done, int64_t timeout_ms) {
  if (options_.read_kv) {
    bool stale;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = apps_.find(app);
      stale = it == apps_.end() || NowMs() - it->second.fetched_ms >= options_.refresh_ms;
    }
    if (stale) Refresh(app);
  }
  Outbox out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto a = apps_.find(app);
    auto d = a == apps_.end() ? nullptr : &a->second.deployments;
    if (d == nullptr || !d->count(deployment)) {
      out.answers.emplace_back(
          std::move(done),
          absl::NotFoundError(a == apps_.end() ? "no application '" + app + "' is deployed"
                                               : "application '" + app + "' has no deployment '" +
                                                     deployment + "'"));
    } else {
      Deployment& dep = (*d)[deployment];
      if (dep.route.max_queued >= 0 &&
          dep.queue.size() >= static_cast<size_t>(dep.route.max_queued)) {
        out.answers.emplace_back(
            std::move(done),
            absl::UnavailableError(deployment + " is full: " + std::to_string(dep.queue.size()) +
                                   " requests wait (max_queued_requests); try again shortly"));
      } else {
        auto p = std::make_shared<Pending>();
        p->request = std::move(request);
        p->done = std::move(done);
        int64_t t =
            timeout_ms >= 0 ? timeout_ms : static_cast<int64_t>(dep.route.request_timeout_s * 1000);
        p->deadline_ms = NowMs() + t;
        dep.queue.push_back(std::move(p));
        Pump(app, deployment, &out);
      }
    }
  }
  Deliver(std::move(out));
}

void Dispatcher::Pump(const std::string& app, const std::string& name, Outbox* out) {
  Deployment& d = apps_[app].deployments[name];
  lumen::internal::Runtime* rt = lumen::internal::CurrentRuntime();
  while (!d.queue.empty()) {
    std::shared_ptr<Pending> p = d.queue.front();
    if (p->answered->load()) {
      d.queue.pop_front();
      continue;
    }
    if (rt == nullptr) {
      d.queue.pop_front();
      p->answered->store(true);
      out->answers.emplace_back(p->done, absl::FailedPreconditionError("lumen is not initialized"));
      continue;
    }
    int i = d.router->Pick(p->request.Header(d.route.hash_header), NowMs());
    if (i < 0) return;  // every candidate is full: wait for a Finished
    d.queue.pop_front();
    d.router->Started(i);
    p->attempts++;
    std::string replica = d.router->id(i);
    d.in_flight.insert(p);
    auto answer = [this, app, name, replica, p](absl::StatusOr<Response> result) {
      OnAnswer(app, name, replica, p, std::move(result));
    };
    out->sends.push_back([channel = ChannelTo(d.route.replicas[i].address, rt, out), p, answer] {
      channel->Call(p->request, answer);
    });
  }
}

void Dispatcher::OnAnswer(const std::string& app, const std::string& name,
                          const std::string& replica, std::shared_ptr<Pending> p,
                          absl::StatusOr<Response> result) {
  Outbox out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto a = apps_.find(app);
    bool known = a != apps_.end() && a->second.deployments.count(name);
    if (known) {
      Deployment& d = a->second.deployments[name];
      d.in_flight.erase(p);
      for (int i = 0; i < static_cast<int>(d.router->size()); ++i) {
        if (d.router->id(i) != replica) continue;
        d.router->Finished(i);
        if (!result.ok() && Retryable(result.status())) {
          // Gone: route around it until the controller's next table.
          std::vector<std::string> ids;
          for (int j = 0; j < static_cast<int>(d.router->size()); ++j) {
            if (j != i) ids.push_back(d.router->id(j));
          }
          d.router->SetReplicas(ids, NowMs());
          d.route.replicas.erase(d.route.replicas.begin() + i);
          a->second.fetched_ms = 0;
        }
        break;
      }
    }
    bool again = known && !result.ok() && Retryable(result.status()) &&
                 p->attempts < options_.max_attempts && !p->answered->load() &&
                 NowMs() < p->deadline_ms;
    if (again) {
      apps_[app].deployments[name].queue.push_front(p);
    } else if (!p->answered->exchange(true)) {
      out.answers.emplace_back(p->done, std::move(result));
    }
    if (known) Pump(app, name, &out);
  }
  for (auto& send : out.sends) send();
  for (auto& [done, r] : out.answers) done(r);  // already on an answering thread
}

void Dispatcher::ExpireLoop() {
  int64_t discovered_ms = 0;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(done_mu_);
      if (stop_cv_.wait_for(lock, std::chrono::milliseconds(20), [&] { return stopping_; })) return;
    }
    Answers out;
    int64_t now = NowMs();
    std::vector<std::string> waiting;  // apps with queued requests and an old table
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [app, a] : apps_) {
        bool queued = false;
        for (auto& [name, d] : a.deployments) queued = queued || !d.queue.empty();
        if (queued && options_.read_kv && now - a.fetched_ms >= options_.refresh_ms / 4) {
          waiting.push_back(app);
        }
        for (auto& [name, d] : a.deployments) {
          // Sent and not answered in time: answered now; the replica's slot
          // stays taken until it answers (or its connection is lost).
          for (const auto& p : d.in_flight) {
            if (now >= p->deadline_ms && !p->answered->exchange(true)) {
              out.emplace_back(p->done, absl::DeadlineExceededError(
                                            "a replica of " + name +
                                            " did not answer within the request's timeout"));
            }
          }
          for (auto it = d.queue.begin(); it != d.queue.end();) {
            auto& p = *it;
            if (now < p->deadline_ms) {
              ++it;
              continue;
            }
            if (!p->answered->exchange(true)) {
              out.emplace_back(
                  p->done,
                  absl::DeadlineExceededError(
                      "no replica of " + name + " took the request within its timeout" +
                      (d.route.replicas.empty() ? " (it has no running replica yet)" : "")));
            }
            it = d.queue.erase(it);
          }
        }
      }
    }
    Deliver({.answers = std::move(out)});
    for (const auto& app : waiting) Refresh(app);
    if (options_.discover_apps && now - discovered_ms >= options_.refresh_ms) {
      discovered_ms = now;
      DiscoverApps();
    }  // new replicas may take them
  }
}

}  // namespace lumen::serve
