// The serve controller; see controller.h.
#include "serve/controller.h"

#include <algorithm>
#include <cmath>

#include "common/logging.h"
#include "common/status.h"
#include "lumen/actor.h"

namespace lumen::serve {
namespace {

using Clock = std::chrono::steady_clock;

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Proxies elsewhere read the routing table once a second: a replica taken
// out of it gets requests for that long.
constexpr double kTableSpreadS = 1.5;

}  // namespace

Controller::Controller(Options options) : options_(options) {
  thread_ = std::thread([this] { Loop(); });
}

Controller::~Controller() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (auto& [name, app] : apps_) {
    for (auto& [dname, d] : app.deployments) {
      for (auto& r : d.replicas) (void)Kill(r.actor);
    }
    if (options_.local) options_.local->RemoveApp(name);
  }
  for (auto& r : stopping_) (void)Kill(r.actor);
}

std::string Controller::VersionOf(const AppConfig& app, const DeploymentConfig& d) {
  Json shipped = Json::array();
  for (const auto& f : app.shipped) shipped.push_back(f.digest);
  Json v = {{"code", app.code},
            {"shipped", shipped},
            {"class", d.cls},
            {"init_args", d.init_args},
            {"resources", d.resources},
            {"max_ongoing", d.max_ongoing_requests},
            {"batch", d.max_batch_size},
            {"batch_wait", d.batch_wait_timeout_s}};
  return v.dump();
}

absl::Status Controller::Apply(const ServeConfig& config) {
  LUMEN_RETURN_IF_ERROR(ValidateServeConfig(config));
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = apps_.begin(); it != apps_.end();) {  // apps no longer declared
    bool kept = std::any_of(config.applications.begin(), config.applications.end(),
                            [&](const AppConfig& a) { return a.name == it->first; });
    if (kept) {
      ++it;
      continue;
    }
    for (auto& [dname, d] : it->second.deployments) RetireAll(it->second, d);
    if (options_.local) options_.local->RemoveApp(it->first);
    if (auto* rt = lumen::internal::CurrentRuntime()) {
      (void)rt->KvPut(kServeKvNamespace, RoutesKey(it->first), "");
    }
    if (options_.on_publish) options_.on_publish(it->first, "");
    it = apps_.erase(it);
  }
  for (const AppConfig& declared : config.applications) {
    App& app = apps_[declared.name];
    app.config = declared;
    app.dirty = true;
    for (auto it = app.deployments.begin(); it != app.deployments.end();) {
      if (declared.Find(it->first)) {
        ++it;
        continue;
      }
      RetireAll(app, it->second);
      it = app.deployments.erase(it);
    }
    for (const DeploymentConfig& dc : declared.deployments) {
      bool fresh = !app.deployments.count(dc.name);
      Deployment& d = app.deployments[dc.name];
      std::string version = VersionOf(declared, dc);
      std::string user_config = dc.user_config.dump();
      if (!fresh && version != d.version) {
        d.status = "UPDATING";
        d.start_failures = 0;
      }
      if (!fresh && version == d.version && user_config != d.user_config) {
        for (auto& r : d.replicas) {  // same replicas, new user_config
          if (r.state == State::kStopping) continue;
          (void)r.actor.Task(&serve::Replica::Reconfigure).Remote(user_config);
        }
      }
      bool limits_changed = fresh || d.config.num_replicas != dc.num_replicas ||
                            d.config.autoscaling.has_value() != dc.autoscaling.has_value();
      d.config = dc;
      d.version = version;
      d.user_config = user_config;
      if (limits_changed) {
        d.target = dc.autoscaling ? std::clamp(dc.num_replicas, dc.autoscaling->min_replicas,
                                               dc.autoscaling->max_replicas)
                                  : dc.num_replicas;
        if (dc.autoscaling && fresh) d.target = std::max(dc.autoscaling->min_replicas, 0);
      }
      if (dc.autoscaling) {
        d.target = std::clamp(d.target, dc.autoscaling->min_replicas, dc.autoscaling->max_replicas);
      }
    }
  }
  // Routing changes (router, limits) take effect before Apply returns.
  Json names = Json::array();
  for (auto& [name, app] : apps_) {
    if (app.dirty) Publish(app);
    names.push_back(name);
  }
  if (auto* rt = lumen::internal::CurrentRuntime()) {
    (void)rt->KvPut(kServeKvNamespace, kAppsKey, names.dump());
  }
  cv_.notify_all();
  return absl::OkStatus();
}

absl::Status Controller::Delete(const std::string& name) {
  ServeConfig keep;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!apps_.count(name)) {
      return absl::NotFoundError("no application '" + name + "' is deployed");
    }
    for (const auto& [n, app] : apps_) {
      if (n != name) keep.applications.push_back(app.config);
    }
  }
  return Apply(keep);
}

void Controller::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    Tick();
    cv_.wait_for(lock, std::chrono::milliseconds(options_.tick_ms), [&] { return stop_; });
  }
}

void Controller::Tick() {
  for (auto& [name, app] : apps_) {
    for (auto& [dname, d] : app.deployments) {
      for (auto& r : d.replicas) Poll(app, d, r);
      if (d.config.autoscaling) Autoscale(app, d);
      Reconcile(app, d);
    }
    if (app.dirty) Publish(app);
  }
  // Replicas of deleted apps and deployments: killed once drained.
  std::erase_if(stopping_, [&](Replica& r) { return Retire(r); });
}

void Controller::Poll(App& app, Deployment& d, Replica& r) {
  auto now = Clock::now();
  if (r.state == State::kStarting) {
    // Running once its first load report (sent with its creation, carrying
    // its data plane's address) is in; a failed creation fails that call.
    auto s = TakeIfReady(r.stats_call);
    if (!s) return;
    if (s->ok()) {
      r.stats = **s;
      r.node = r.stats.node;
      r.state = State::kRunning;
      r.since = now;
      d.start_failures = 0;
      d.message.clear();
      app.dirty = true;
    } else {
      d.start_failures++;
      d.message = "replica " + r.id + " failed to start: " + std::string(s->status().message());
      LUMEN_LOG_WARN("serve: {}", d.message);
      d.retry_after =
          now + std::chrono::milliseconds(std::min(5'000, 250 << std::min(d.start_failures, 5)));
      Stop(app, r, 0);  // removed below
    }
    return;
  }
  if (r.state != State::kRunning) return;
  // Load, for autoscaling and swrr.
  if (auto s = TakeIfReady(r.stats_call)) {
    if (!s->ok()) {
      d.message = "replica " + r.id + " died: " + std::string(s->status().message());
      LUMEN_LOG_WARN("serve: {}", d.message);
      Stop(app, r, 0);  // dead: replaced below
      return;
    }
    r.stats = **s;
    r.node = r.stats.node;
    app.dirty = true;  // new load for the routers
  } else if (!r.stats_call &&
             now - r.stats_sent >= std::chrono::milliseconds(options_.stats_period_ms)) {
    r.stats_call = r.actor.Task(&serve::Replica::Stats).Remote();
    r.stats_sent = now;
  }
  // Health.
  auto period =
      std::chrono::milliseconds(static_cast<int64_t>(d.config.health_check_period_s * 1000));
  if (r.health_call) {
    bool late = now - r.health_sent > std::max(period * 3, std::chrono::milliseconds(3000));
    auto h = TakeIfReady(r.health_call);
    if (!h && !late) return;
    r.health_call.reset();
    if (!h || !h->ok() || !**h) {
      d.message = "replica " + r.id + " failed its health check" +
                  (h && !h->ok() ? ": " + std::string(h->status().message()) : "");
      LUMEN_LOG_WARN("serve: {}", d.message);
      Stop(app, r, 0);  // no draining: it is broken
    }
  } else if (now - r.health_sent >= period) {
    r.health_call = r.actor.Task(&serve::Replica::Health).Remote();
    r.health_sent = now;
  }
}

void Controller::Autoscale(App& app, Deployment& d) {
  const AutoscalingConfig& as = *d.config.autoscaling;
  double ongoing = 0;
  int running = 0;
  for (const auto& r : d.replicas) {
    if (r.state != State::kRunning) continue;
    running++;
    ongoing += r.stats.ongoing;
  }
  size_t queued = 0;
  if (options_.local) {
    auto counters = options_.local->Counters();
    auto it = counters.find({app.config.name, d.config.name});
    if (it != counters.end()) {
      queued = it->second.queued;
      ongoing = std::max(ongoing, static_cast<double>(it->second.ongoing));
    }
  }
  int want = static_cast<int>(std::ceil((ongoing + queued) / as.target_ongoing_requests - 1e-9));
  want = std::clamp(want, as.min_replicas, as.max_replicas);
  auto now = Clock::now();
  if (d.target == 0 && queued > 0) {  // from zero: at once, requests are waiting
    d.target = std::max(1, want);
    d.want = -1;
    return;
  }
  if (want == d.target) {
    d.want = -1;
    return;
  }
  if (want != d.want) {
    d.want = want;
    d.want_since = now;
    return;
  }
  double delay = want > d.target ? as.upscale_delay_s : as.downscale_delay_s;
  if (Seconds(now - d.want_since) >= delay) {
    LUMEN_LOG_INFO("serve: {} scales {} -> {} replicas (ongoing {:.1f}, queued {})", d.config.name,
                   d.target, want, ongoing, queued);
    d.target = want;
    d.want = -1;
  }
}

void Controller::Start(App& app, Deployment& d) {
  Replica r;
  r.id = d.config.name + "#" + std::to_string(d.next_index++);
  auto creator = Actor(serve::Replica::Create)
                     .SetResources(d.config.resources)
                     .SetMaxConcurrency(4)  // control calls; requests come on the data plane
                     .SetMaxRestarts(0);
  Json options = {{"max_ongoing", d.config.max_ongoing_requests}};
  for (const auto& f : app.config.shipped) {
    options["code"].push_back({{"name", f.name}, {"digest", f.digest}});
  }
  if (d.config.max_batch_size > 0) {
    options["max_batch_size"] = d.config.max_batch_size;
    options["batch_wait_timeout_s"] = d.config.batch_wait_timeout_s;
  }
  r.actor = creator.Remote(app.config.name, d.config.name, r.id, d.config.cls,
                           d.config.init_args.dump(), d.user_config, options.dump());
  r.stats_call = r.actor.Task(&serve::Replica::Stats).Remote();  // answered once it runs
  r.stats_sent = Clock::now();
  r.version = d.version;
  r.since = Clock::now();
  d.replicas.push_back(std::move(r));
}

void Controller::Stop(App& app, Replica& r, double drain_s) {
  if (r.state != State::kStopping) {
    r.state = State::kStopping;
    r.since = Clock::now();
    r.drain_s = drain_s;
    r.stats_sent = r.since;  // a Stats sent after this shows whether it drained
    r.stats_call.reset();
  }
  app.dirty = true;
}

void Controller::RetireAll(App& app, Deployment& d) {
  for (auto& r : d.replicas) {
    Stop(app, r, d.config.request_timeout_s + 2);
    stopping_.push_back(r);
  }
}

bool Controller::Retire(Replica& r) {
  auto now = Clock::now();
  bool drained = r.stats_sent > r.since && !r.stats_call && r.stats.ongoing_now == 0;
  double waited = Seconds(now - r.since);
  if ((drained && waited > kTableSpreadS) || waited >= r.drain_s) {
    (void)Kill(r.actor);
    return true;
  }
  if (auto s = TakeIfReady(r.stats_call)) {
    r.stats = s->ok() ? **s : ReplicaStats{};  // dead: nothing to wait for
  } else if (!r.stats_call) {
    r.stats_call = r.actor.Task(&serve::Replica::Stats).Remote();
    r.stats_sent = now;
  }
  return false;
}

void Controller::Reconcile(App& app, Deployment& d) {
  auto now = Clock::now();
  int running_new = 0, starting_new = 0, running_old = 0;
  for (auto& r : d.replicas) {
    bool current = r.version == d.version;
    if (r.state == State::kStarting && !current) Stop(app, r, 0);
    if (r.state == State::kRunning) (current ? running_new : running_old)++;
    if (r.state == State::kStarting) starting_new++;
  }
  bool may_start = now >= d.retry_after;
  if (running_old > 0) {  // rolling: one new replica ahead, then one old leaves
    if (starting_new == 0 && running_new + running_old < d.target + 1 && may_start) {
      Start(app, d);
    }
    if (running_new + running_old > d.target) {
      for (auto& r : d.replicas) {
        if (r.state == State::kRunning && r.version != d.version) {
          Stop(app, r, d.config.request_timeout_s + 2);
          break;
        }
      }
    }
  } else {
    int live = running_new + starting_new;
    for (; live < d.target && may_start; ++live) Start(app, d);
    for (auto it = d.replicas.rbegin(); live > d.target && it != d.replicas.rend(); ++it) {
      if (it->state == State::kStarting || it->state == State::kRunning) {
        Stop(app, *it, d.config.request_timeout_s + 2);
        live--;
      }
    }
  }
  // Stopping replicas leave once drained (or at once when broken or dead).
  std::erase_if(d.replicas, [&](Replica& r) {
    if (r.state != State::kStopping || !Retire(r)) return false;
    app.dirty = true;
    return true;
  });
  int running = 0;
  for (const auto& r : d.replicas) running += r.state == State::kRunning && r.version == d.version;
  bool settled = running == d.target && static_cast<int>(d.replicas.size()) == d.target;
  std::string status = settled ? "HEALTHY" : (d.start_failures >= 3 ? "DEPLOY_FAILED" : "UPDATING");
  if (status != d.status) {
    d.status = status;
    app.dirty = true;
  }
}

void Controller::Publish(App& app) {
  app.dirty = false;
  RouteTable t;
  t.app = app.config.name;
  t.route_prefix = app.config.route_prefix;
  t.ingress = app.config.ingress;
  t.version = ++app.version;
  int64_t now = WallMs();
  for (const auto& [name, d] : app.deployments) {
    DeploymentRoute route;
    route.router = d.config.router;
    route.max_ongoing = d.config.max_ongoing_requests;
    route.max_queued = d.config.max_queued_requests;
    route.hash_header = d.config.hash_header;
    route.request_timeout_s = d.config.request_timeout_s;
    for (const auto& r : d.replicas) {
      if (r.state != State::kRunning) continue;
      ReplicaRoute rr;
      rr.id = r.id;
      rr.actor = r.actor.ID();
      rr.node = r.node;
      rr.address = r.stats.address;
      rr.load.ongoing = r.stats.ongoing;
      rr.load.completed_per_s = r.stats.completed_per_s;
      rr.load.reported_at_ms = r.stats.completed_total > 0 || r.stats.ongoing > 0 ? now : 0;
      route.replicas.push_back(rr);
    }
    t.deployments[name] = std::move(route);
  }
  if (options_.local) options_.local->SetTable(t);
  std::string json = t.ToJson();
  if (auto* rt = lumen::internal::CurrentRuntime()) {
    (void)rt->KvPut(kServeKvNamespace, RoutesKey(t.app), json);
  }
  if (options_.on_publish) options_.on_publish(t.app, json);
}

Json Controller::Status() const {
  std::lock_guard<std::mutex> lock(mu_);
  Json out = {{"applications", Json::object()}};
  for (const auto& [name, app] : apps_) {
    Json aj = {{"route_prefix", app.config.route_prefix},
               {"ingress", app.config.ingress},
               {"deployments", Json::object()}};
    std::string app_status = "RUNNING";
    for (const auto& [dname, d] : app.deployments) {
      Json dj = {{"status", d.status},
                 {"message", d.message},
                 {"target", d.target},
                 {"router", d.config.router},
                 {"replicas", Json::array()}};
      for (const auto& r : d.replicas) {
        const char* state = r.state == State::kStarting  ? "STARTING"
                            : r.state == State::kRunning ? "RUNNING"
                                                         : "STOPPING";
        dj["replicas"].push_back({{"id", r.id},
                                  {"state", state},
                                  {"node", r.node},
                                  {"address", r.stats.address},
                                  {"ongoing", r.stats.ongoing_now},
                                  {"current_version", r.version == d.version}});
      }
      if (d.status == "DEPLOY_FAILED") app_status = "DEPLOY_FAILED";
      if (d.status == "UPDATING" && app_status == "RUNNING") app_status = "DEPLOYING";
      aj["deployments"][dname] = dj;
    }
    aj["status"] = app_status;
    out["applications"][name] = aj;
  }
  return out;
}

bool Controller::Settled() const {
  Json s = Status();
  for (const auto& [name, app] : s["applications"].items()) {
    if (app["status"] != "RUNNING") return false;
  }
  return true;
}

}  // namespace lumen::serve
