// The dispatcher on its event loop; see dispatcher.h.
#include "serve/dispatcher.h"

#include <algorithm>

#include <future>

#include "common/logging.h"
#include "lumen/internal/runtime.h"
#include "serve/channel.h"

namespace lumen::serve {

std::string AppRoute::PathBelowPrefix(const std::string& path) const {
  std::string below = route_prefix == "/" ? path : path.substr(route_prefix.size());
  return below.empty() ? "/" : below;
}

bool AppRoute::Reachable(const std::string& deployment) const {
  if (deployment == ingress) return true;
  auto it = deployments.find(deployment);
  return it != deployments.end() && it->second.exposed;
}

namespace {

// A data-plane channel as the dispatcher's loop uses it: its socket runs on
// the loop's thread, and answers come back to the loop (through the guard;
// dropped once this connection or the dispatcher is gone, since the core
// that would take them went first).
class LoopChannel : public ReplicaConnection {
 public:
  LoopChannel(EventLoop* loop, std::shared_ptr<LoopGuard> guard, std::string address,
              std::string token)
      : guard_(std::move(guard)),
        channel_(std::make_unique<ReplicaChannel>(std::move(address), std::move(token),
                                                  &loop->io_context())),
        in_flight_(std::make_shared<size_t>(0)),
        open_(std::make_shared<bool>(true)) {}
  ~LoopChannel() override { *open_ = false; }
  void Call(const Request& request, Done done) override {
    ++*in_flight_;
    channel_->Call(request, [guard = guard_, in_flight = in_flight_, open = open_,
                             done = std::move(done)](absl::StatusOr<Response> r) mutable {
      guard->Post("dispatcher.answer",
                  [in_flight, open, done = std::move(done), r = std::move(r)]() mutable {
                    if (!*open) return;
                    --*in_flight;
                    done(std::move(r));
                  });
    });
  }
  bool broken() const override { return channel_->broken(); }
  size_t in_flight() const override { return *in_flight_; }

 private:
  std::shared_ptr<LoopGuard> guard_;
  std::unique_ptr<ReplicaChannel> channel_;
  std::shared_ptr<size_t> in_flight_;  // loop only
  std::shared_ptr<bool> open_;         // loop only
};

}  // namespace

Dispatcher::Dispatcher(Options options) : options_(std::move(options)), loop_("serve_dispatch") {
  if (options_.clock == nullptr) options_.clock = RealClock::Get();
  snapshot_ = std::make_shared<const AppRoutes>();
  guard_ = std::make_shared<LoopGuard>(&loop_);
  if (!options_.connect) {
    options_.connect = [loop = &loop_, guard = guard_](
                           const std::string& address) -> std::unique_ptr<ReplicaConnection> {
      auto* rt = lumen::internal::CurrentRuntime();
      return std::make_unique<LoopChannel>(loop, guard, address, rt ? rt->ClusterToken() : "");
    };
  }
  loop_.Start();
  std::promise<void> ready;
  loop_.Post("dispatcher.start", [&] {
    core_ = std::make_unique<DispatcherCore>(
        DispatcherCore::Options{.max_attempts = options_.max_attempts}, options_.clock,
        options_.connect);
    deadline_timer_ = loop_.MakeTimer("dispatcher.deadline");
    if (options_.read_kv) {
      refresh_timer_ =
          loop_.RunEvery("dispatcher.refresh", std::chrono::milliseconds(options_.refresh_ms),
                         [this] { Refresh(); });
    }
    if (options_.on_load) {
      load_timer_ =
          loop_.RunEvery("dispatcher.load", std::chrono::milliseconds(options_.load_period_ms),
                         [this] { ReportLoad(false); });
    }
    ready.set_value();
  });
  ready.get_future().wait();
}

Dispatcher::~Dispatcher() {
  std::promise<void> done;
  loop_.Post("dispatcher.stop", [&] {
    refresh_timer_.reset();
    load_timer_.reset();
    deadline_timer_.reset();
    core_.reset();  // answers what waits CANCELLED
    done.set_value();
  });
  done.get_future().wait();
  guard_->Close();  // late KV answers are dropped from here on
  loop_.Stop();
}

Dispatcher& Dispatcher::Default() {
  static Dispatcher* d = new Dispatcher(Options{});  // lives to the end of the process
  return *d;
}

void Dispatcher::OnLoop(const char* name, std::function<void()> fn) {
  if (loop_.IsCurrentThread()) {
    fn();
  } else {
    loop_.Post(name, std::move(fn));
  }
}

void Dispatcher::Send(const std::string& app, const std::string& deployment, Request request,
                      Done done, int64_t timeout_ms) {
  OnLoop("dispatcher.send", [this, app, deployment, request = std::move(request),
                             done = std::move(done), timeout_ms]() mutable {
    if (!core_) {
      done(absl::CancelledError("the dispatcher is stopping"));
      return;
    }
    core_->Send(app, deployment, std::move(request), std::move(done), timeout_ms);
    AfterChange();
  });
}

void Dispatcher::SetTable(const RouteTable& table) {
  OnLoop("dispatcher.set_table", [this, table] {
    if (!core_) return;
    core_->SetTable(table);
    AfterChange();
  });
}

void Dispatcher::RemoveApp(const std::string& app) {
  OnLoop("dispatcher.remove_app", [this, app] {
    if (!core_) return;
    core_->AppMissing(app);
    AfterChange();
  });
}

void Dispatcher::AfterChange() {
  // The deadline timer follows the earliest deadline.
  std::optional<int64_t> next = core_->NextDeadline();
  if (next != armed_for_) {
    armed_for_ = next;
    if (!next) {
      deadline_timer_->Cancel();
    } else {
      int64_t delay = std::max<int64_t>(0, *next - options_.clock->NowMs());
      deadline_timer_->Arm(std::chrono::milliseconds(delay), [this] {
        armed_for_.reset();
        core_->Expire();
        AfterChange();
      });
    }
  }
  for (const auto& app : core_->TakeWantedTables()) Fetch(app);
  if (options_.on_load) {
    if (!core_->TakeStarved().empty()) ReportLoad(true);
  } else {
    core_->TakeStarved();
  }
  // Snapshot for Match/Find/Apps (other threads), when tables changed.
  auto tables = core_->Tables();
  auto routes = std::make_shared<AppRoutes>();
  for (const auto& t : tables) {
    auto r = std::make_shared<AppRoute>();
    r->app = t.app;
    r->route_prefix = t.route_prefix;
    r->ingress = t.ingress;
    for (const auto& [name, d] : t.deployments) {
      r->deployments[name] = {d.request_timeout_s, d.exposed, d.models,
                              static_cast<int>(d.replicas.size()), d.unavailable};
    }
    routes->push_back(std::move(r));
  }
  absl::MutexLock lock(&snapshot_mu_);
  bool same = routes->size() == snapshot_->size();
  for (size_t i = 0; same && i < routes->size(); ++i) {
    const AppRoute& a = *(*routes)[i];
    const AppRoute& b = *(*snapshot_)[i];
    same = a.app == b.app && a.route_prefix == b.route_prefix && a.ingress == b.ingress &&
           a.deployments.size() == b.deployments.size() &&
           std::equal(a.deployments.begin(), a.deployments.end(), b.deployments.begin(),
                      [](const auto& x, const auto& y) { return x == y; });
  }
  if (!same) snapshot_ = std::move(routes);
}

void Dispatcher::Fetch(const std::string& app) {
  auto* rt = lumen::internal::CurrentRuntime();
  if (!options_.read_kv || rt == nullptr || !fetching_.insert(app).second) return;
  rt->KvGetAsync(kServeKvNamespace, RoutesKey(app),
                 [this, guard = guard_, app](absl::StatusOr<std::optional<std::string>> got) {
                   guard->Post("dispatcher.fetched", [this, app, got = std::move(got)] {
                     fetching_.erase(app);
                     if (!core_ || !got.ok()) return;  // keep what we have; try again later
                     if (!got->has_value() || (*got)->empty()) {
                       core_->AppMissing(app);
                     } else if (auto table = RouteTable::FromJson(**got); table.ok()) {
                       core_->SetTable(*table);
                     } else {
                       LUMEN_LOG_WARN("serve: the routing table of {} does not parse: {}", app,
                                      table.status().ToString());
                     }
                     AfterChange();
                   });
                 });
}

void Dispatcher::Refresh() {
  if (!core_) return;
  for (const auto& t : core_->Tables()) {
    if (core_->TableAgeMs(t.app) >= options_.refresh_ms) Fetch(t.app);
  }
  auto* rt = lumen::internal::CurrentRuntime();
  if (!options_.discover_apps || rt == nullptr) return;
  rt->KvGetAsync(kServeKvNamespace, kAppsKey,
                 [this, guard = guard_](absl::StatusOr<std::optional<std::string>> got) {
                   if (!got.ok() || !got->has_value()) return;
                   std::set<std::string> listed;
                   Json names = Json::parse(**got, nullptr, /*allow_exceptions=*/false);
                   if (!names.is_array()) return;  // not written by this version: keep what we have
                   for (const auto& n : names) {
                     if (n.is_string()) listed.insert(n.get<std::string>());
                   }
                   guard->Post("dispatcher.discovered", [this, listed] {
                     if (!core_) return;
                     for (const auto& t : core_->Tables()) {
                       if (!listed.count(t.app)) core_->AppMissing(t.app);
                     }
                     for (const auto& app : listed) {
                       if (!core_->Knows(app)) Fetch(app);
                     }
                     AfterChange();
                   });
                 });
}

void Dispatcher::ReportLoad(bool starved_only) {
  std::map<std::string, std::vector<IngressLoad>> by_app;
  for (const auto& [key, c] : core_->CountersByDeployment()) {
    if (c.queued == 0 && c.ongoing == 0) continue;
    if (starved_only && !(c.queued > 0 && c.replicas == 0)) continue;
    by_app[key.first].push_back(
        {key.second, static_cast<int64_t>(c.queued), static_cast<int64_t>(c.ongoing)});
  }
  for (const auto& [app, load] : by_app) options_.on_load(app, load);
}

std::shared_ptr<const AppRoute> Dispatcher::Match(const std::string& path) const {
  std::shared_ptr<const AppRoutes> routes;
  {
    absl::MutexLock lock(&snapshot_mu_);
    routes = snapshot_;
  }
  std::shared_ptr<const AppRoute> best;
  for (const auto& r : *routes) {
    const std::string& prefix = r->route_prefix;
    if (prefix.empty()) continue;
    bool matches = prefix == "/" || path == prefix ||
                   (path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0 &&
                    (prefix.back() == '/' || path[prefix.size()] == '/'));
    if (matches && (!best || prefix.size() > best->route_prefix.size())) best = r;
  }
  return best;
}

std::shared_ptr<const AppRoute> Dispatcher::Find(const std::string& app) const {
  absl::MutexLock lock(&snapshot_mu_);
  for (const auto& r : *snapshot_) {
    if (r->app == app) return r;
  }
  return nullptr;
}

AppRoutes Dispatcher::Apps() const {
  absl::MutexLock lock(&snapshot_mu_);
  return *snapshot_;
}

std::optional<std::pair<std::shared_ptr<const AppRoute>, std::string>> Dispatcher::FindModel(
    const std::string& name) const {
  absl::MutexLock lock(&snapshot_mu_);
  for (const auto& app : *snapshot_) {
    for (const auto& [deployment, d] : app->deployments) {
      if (std::find(d.models.begin(), d.models.end(), name) != d.models.end()) {
        return std::make_pair(app, deployment);
      }
    }
  }
  return std::nullopt;
}

std::map<std::pair<std::string, std::string>, Dispatcher::Counters>
Dispatcher::CountersByDeployment() const {
  auto done =
      std::make_shared<std::promise<std::map<std::pair<std::string, std::string>, Counters>>>();
  auto got = done->get_future();
  const_cast<Dispatcher*>(this)->OnLoop("dispatcher.counters", [this, done] {
    done->set_value(core_ ? core_->CountersByDeployment()
                          : std::map<std::pair<std::string, std::string>, Counters>{});
  });
  if (got.wait_for(std::chrono::seconds(1)) != std::future_status::ready) return {};
  return got.get();
}

}  // namespace lumen::serve
