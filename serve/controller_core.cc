// One application's reconciler; see controller_core.h.
#include "serve/controller_core.h"

#include <algorithm>
#include <cmath>

#include "common/file_util.h"
#include "common/logging.h"
#include "common/status.h"
#include "serve/json_util.h"

namespace lumen::serve {
namespace {

int64_t Ms(double seconds) { return static_cast<int64_t>(seconds * 1000); }

const char* StateName(int s) {
  static const char* names[] = {"STARTING", "RUNNING", "STOPPING"};
  return names[s];
}

}  // namespace

ControllerCore::ControllerCore(std::string app, Options options, Clock* clock, ReplicaOps* ops,
                               std::function<void(const RouteTable&)> publish)
    : app_(std::move(app)),
      options_(options),
      clock_(clock),
      ops_(ops),
      publish_(std::move(publish)) {}

ControllerCore::~ControllerCore() = default;

std::string ControllerCore::VersionOf(const AppConfig& app, const DeploymentConfig& d) {
  Json shipped = Json::array();
  for (const auto& f : app.shipped) shipped.push_back(f.digest);
  Json v = {{"shipped", shipped},
            {"class", d.cls},
            {"init_args", d.init_args},
            {"resources", d.resources},
            {"max_ongoing", d.max_ongoing_requests},
            {"batch", d.max_batch_size},
            {"batch_wait", d.batch_wait_timeout_s}};
  return Sha256Hex(DumpJson(v)).substr(0, 16);
}

absl::Status ControllerCore::Apply(const AppConfig& declared) {
  ServeConfig one;
  one.applications.push_back(declared);
  LUMEN_RETURN_IF_ERROR(ValidateServeConfig(one));
  if (declared.name != app_) {
    return absl::InvalidArgumentError("the controller of '" + app_ + "' got the config of '" +
                                      declared.name + "'");
  }
  config_ = declared;
  configured_ = true;
  deleted_ = false;
  dirty_ = true;
  for (auto it = deployments_.begin(); it != deployments_.end();) {
    if (declared.Find(it->first)) {
      ++it;
      continue;
    }
    RetireAll(it->second);
    it = deployments_.erase(it);
  }
  for (const DeploymentConfig& dc : declared.deployments) {
    bool fresh = !deployments_.count(dc.name);
    Deployment& d = deployments_[dc.name];
    std::string version = VersionOf(declared, dc);
    std::string user_config = DumpJson(dc.user_config);
    if (!fresh && version != d.version) {
      d.status = "UPDATING";
      d.start_failures = 0;
      d.retry_after_ms = 0;
    }
    if (!fresh && version == d.version && user_config != d.user_config) {
      for (auto& r : d.replicas) {  // same replicas, new user_config
        if (r->state == State::kStopping) continue;
        ops_->Reconfigure(
            r->handle, user_config, [this, id = r->id](absl::StatusOr<std::string> why) {
              Deployment* dep = DeploymentOf(id);
              if (dep == nullptr) return;
              std::string failed = !why.ok() ? std::string(why.status().message()) : *why;
              if (!failed.empty()) dep->message = id + ": " + failed;
            });
      }
    }
    bool limits_changed = fresh || d.config.num_replicas != dc.num_replicas ||
                          d.config.autoscaling.has_value() != dc.autoscaling.has_value() ||
                          d.config.unloaded != dc.unloaded;
    d.config = dc;
    d.version = version;
    d.user_config = user_config;
    if (limits_changed) {
      d.target = dc.num_replicas;
      if (dc.autoscaling) {
        d.target = fresh ? dc.autoscaling->min_replicas
                         : std::clamp(dc.num_replicas, dc.autoscaling->min_replicas,
                                      dc.autoscaling->max_replicas);
      }
    }
    if (dc.autoscaling) {
      d.target = std::clamp(d.target, dc.autoscaling->min_replicas, dc.autoscaling->max_replicas);
    }
    if (dc.unloaded) d.target = 0;
  }
  Claim();    // adopted replicas of these deployments
  Publish();  // routing changes (router, limits) take effect at once
  return absl::OkStatus();
}

void ControllerCore::Adopt(const std::vector<FoundReplica>& found) {
  for (const auto& f : found) {
    auto d = deployments_.find(f.stats.deployment);
    auto r = std::make_unique<Replica>();
    r->id = f.stats.replica;
    r->handle = f.handle;
    r->version = f.stats.version;
    r->node = f.stats.node;
    r->stats = f.stats;
    r->since_ms = clock_->NowMs();
    r->stats_sent_ms = r->since_ms;
    r->health_sent_ms = r->since_ms;
    r->state = State::kRunning;
    size_t hash = r->id.rfind('#');
    int index = hash == std::string::npos ? 0 : std::atoi(r->id.c_str() + hash + 1);
    LUMEN_LOG_INFO("serve: {} adopts replica {} (version {})", app_, r->id, r->version);
    if (f.stats.address.empty()) {  // cannot take requests: it goes
      Stop(*r, 0);
      retiring_.push_back(std::move(r));
      continue;
    }
    r->index = index;
    if (d == deployments_.end()) {  // claimed by Apply, or stopped
      unclaimed_.push_back(std::move(r));
      continue;
    }
    d->second.next_index = std::max(d->second.next_index, index + 1);
    d->second.replicas.push_back(std::move(r));
  }
  dirty_ = true;
}

void ControllerCore::Claim() {
  for (auto& r : unclaimed_) {
    auto d = deployments_.find(r->stats.deployment);
    if (d == deployments_.end() || deleted_) {
      // Not declared any more: it goes.
      Stop(*r, 0);
      retiring_.push_back(std::move(r));
      continue;
    }
    d->second.next_index = std::max(d->second.next_index, r->index + 1);
    d->second.replicas.push_back(std::move(r));
  }
  unclaimed_.clear();
}

void ControllerCore::Delete() {
  deleted_ = true;
  Claim();  // stops what was adopted
  for (auto& [name, d] : deployments_) RetireAll(d);
  deployments_.clear();
  dirty_ = true;
}

bool ControllerCore::Deleted() const { return deleted_ && retiring_.empty() && unclaimed_.empty(); }

void ControllerCore::OnIngressLoad(const std::string& source,
                                   const std::vector<IngressLoad>& load) {
  loads_[source] = {load, clock_->NowMs()};
  for (const auto& l : load) {
    auto d = deployments_.find(l.deployment);
    // From zero: at once, requests are waiting.
    if (d != deployments_.end() && d->second.config.autoscaling && !d->second.config.unloaded &&
        d->second.target == 0 && l.queued > 0) {
      d->second.target = std::max(1, d->second.config.autoscaling->min_replicas);
      d->second.want = -1;
      Reconcile(d->second);
    }
  }
}

ControllerCore::Replica* ControllerCore::Find(const std::string& id) {
  for (auto& [name, d] : deployments_) {
    for (auto& r : d.replicas) {
      if (r->id == id) return r.get();
    }
  }
  for (auto& r : retiring_) {
    if (r->id == id) return r.get();
  }
  return nullptr;
}

ControllerCore::Deployment* ControllerCore::DeploymentOf(const std::string& replica_id) {
  for (auto& [name, d] : deployments_) {
    for (auto& r : d.replicas) {
      if (r->id == replica_id) return &d;
    }
  }
  return nullptr;
}

void ControllerCore::Tick() {
  if ((configured_ || deleted_) && !unclaimed_.empty()) Claim();
  for (auto& [name, d] : deployments_) {
    for (auto& r : d.replicas) Poll(d, *r);
    if (d.config.autoscaling && !d.config.unloaded) Autoscale(d);
    Reconcile(d);
  }
  std::erase_if(retiring_, [&](ReplicaPtr& r) { return Retire(*r); });
  if (dirty_) Publish();
}

void ControllerCore::SendStats(Replica& r) {
  r.stats_pending = true;
  r.stats_sent_ms = clock_->NowMs();
  ops_->Stats(r.handle,
              [this, id = r.id](absl::StatusOr<ReplicaStats> s) { OnStats(id, std::move(s)); });
}

void ControllerCore::OnStats(const std::string& id, absl::StatusOr<ReplicaStats> s) {
  Replica* r = Find(id);
  if (r == nullptr) return;
  r->stats_pending = false;
  if (r->state == State::kStopping) {
    if (s.ok()) {
      r->stats = *s;
      r->drained_seen = s->ongoing_now == 0;
    } else {
      r->drained_seen = true;  // dead: nothing to wait for
    }
    return;
  }
  Deployment* d = DeploymentOf(id);
  if (d == nullptr) return;
  if (r->state == State::kStarting) {
    // Running once its first load report (carrying its data plane's
    // address) is in; a failed creation fails that call.
    if (s.ok() && !s->address.empty()) {
      r->stats = *s;
      r->node = s->node;
      r->state = State::kRunning;
      r->since_ms = clock_->NowMs();
      r->health_sent_ms = r->since_ms;
      r->pending_reason.clear();
      d->start_failures = 0;
      d->message.clear();
      dirty_ = true;
      return;
    }
    d->start_failures++;
    d->message = "replica " + id + " failed to start: " +
                 (s.ok() ? std::string("it has no data plane") : std::string(s.status().message()));
    LUMEN_LOG_WARN("serve: {}", d->message);
    d->retry_after_ms =
        clock_->NowMs() + std::min<int64_t>(5'000, int64_t{250} << std::min(d->start_failures, 5));
    Stop(*r, 0);
    return;
  }
  if (!s.ok()) {
    d->message = "replica " + id + " died: " + std::string(s.status().message());
    LUMEN_LOG_WARN("serve: {}", d->message);
    Stop(*r, 0);  // dead: replaced by Reconcile
    return;
  }
  r->stats = *s;
  r->node = s->node;
  dirty_ = true;  // new load for the routers
}

void ControllerCore::OnHealth(const std::string& id, absl::StatusOr<bool> h) {
  Replica* r = Find(id);
  if (r == nullptr || !r->health_pending) return;
  r->health_pending = false;
  if (r->state != State::kRunning) return;
  if (h.ok() && *h) return;
  Deployment* d = DeploymentOf(id);
  if (d == nullptr) return;
  d->message = "replica " + id + " failed its health check" +
               (h.ok() ? std::string() : ": " + std::string(h.status().message()));
  LUMEN_LOG_WARN("serve: {}", d->message);
  Stop(*r, 0);  // no draining: it is broken
}

void ControllerCore::OnState(const std::string& id, absl::StatusOr<ReplicaActorState> s) {
  Replica* r = Find(id);
  if (r == nullptr) return;
  r->state_pending = false;
  if (r->state != State::kStarting || !s.ok()) return;
  std::string reason = s->kind == ReplicaActorState::Kind::kPending ? s->reason : "";
  if (reason != r->pending_reason) {
    r->pending_reason = reason;
    dirty_ = true;  // the table says why nothing runs
  }
}

void ControllerCore::Poll(Deployment& d, Replica& r) {
  int64_t now = clock_->NowMs();
  if (r.state == State::kStarting) {
    if (!r.stats_pending) SendStats(r);  // answered once it runs
    if (!r.state_pending && now - r.state_sent_ms >= options_.state_period_ms) {
      r.state_pending = true;
      r.state_sent_ms = now;
      ops_->State(r.handle, [this, id = r.id](absl::StatusOr<ReplicaActorState> s) {
        OnState(id, std::move(s));
      });
    }
    return;
  }
  if (r.state != State::kRunning) return;
  if (!r.stats_pending && now - r.stats_sent_ms >= options_.stats_period_ms) SendStats(r);
  int64_t period = Ms(d.config.health_check_period_s);
  if (r.health_pending) {
    if (now - r.health_sent_ms > std::max<int64_t>(period * 3, 3'000)) {
      OnHealth(r.id, absl::DeadlineExceededError("no answer in " +
                                                 std::to_string(now - r.health_sent_ms) + " ms"));
    }
  } else if (now - r.health_sent_ms >= period) {
    r.health_pending = true;
    r.health_sent_ms = now;
    ops_->Health(r.handle, [this, id = r.id](absl::StatusOr<bool> h) { OnHealth(id, h); });
  }
}

void ControllerCore::Autoscale(Deployment& d) {
  const AutoscalingConfig& as = *d.config.autoscaling;
  int64_t now = clock_->NowMs();
  double ongoing = 0;
  for (const auto& r : d.replicas) {
    if (r->state == State::kRunning) ongoing += r->stats.ongoing;
  }
  int64_t queued = 0, ingress_ongoing = 0;
  for (const auto& [source, report] : loads_) {
    if (now - report.at_ms > options_.load_ttl_ms) continue;
    for (const auto& l : report.load) {
      if (l.deployment != d.config.name) continue;
      queued += l.queued;
      ingress_ongoing += l.ongoing;
    }
  }
  ongoing = std::max(ongoing, static_cast<double>(ingress_ongoing));
  int want = static_cast<int>(std::ceil((ongoing + queued) / as.target_ongoing_requests - 1e-9));
  want = std::clamp(want, as.min_replicas, as.max_replicas);
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
    d.want_since_ms = now;
    return;
  }
  double delay = want > d.target ? as.upscale_delay_s : as.downscale_delay_s;
  if (now - d.want_since_ms >= Ms(delay)) {
    LUMEN_LOG_INFO("serve: {} scales {} -> {} replicas (ongoing {:.1f}, queued {})", d.config.name,
                   d.target, want, ongoing, queued);
    d.target = want;
    d.want = -1;
  }
}

void ControllerCore::StartReplica(Deployment& d) {
  auto r = std::make_unique<Replica>();
  r->id = d.config.name + "#" + std::to_string(d.next_index++);
  r->version = d.version;
  r->since_ms = clock_->NowMs();
  ReplicaSpec spec;
  spec.app = app_;
  spec.deployment = d.config.name;
  spec.id = r->id;
  spec.cls = d.config.cls;
  spec.init_args_json = DumpJson(d.config.init_args);
  spec.user_config_json = d.user_config;
  spec.resources = d.config.resources;
  spec.version = d.version;
  Json options = {{"max_ongoing", d.config.max_ongoing_requests}, {"version", d.version}};
  for (const auto& f : config_.shipped) {
    options["code"].push_back({{"name", f.name}, {"digest", f.digest}});
  }
  if (d.config.max_batch_size > 0) {
    options["max_batch_size"] = d.config.max_batch_size;
    options["batch_wait_timeout_s"] = d.config.batch_wait_timeout_s;
  }
  spec.options_json = DumpJson(options);
  r->handle = ops_->Start(spec);
  SendStats(*r);  // answered once it runs
  d.replicas.push_back(std::move(r));
}

void ControllerCore::Stop(Replica& r, int64_t drain_ms) {
  if (r.state != State::kStopping) {
    r.state = State::kStopping;
    r.since_ms = clock_->NowMs();
    r.drain_ms = drain_ms;
    r.drained_seen = false;
    r.stats_pending = false;  // a Stats sent after this shows whether it drained
  }
  dirty_ = true;
}

void ControllerCore::RetireAll(Deployment& d) {
  for (auto& r : d.replicas) {
    Stop(*r, Ms(d.config.request_timeout_s) + 2'000);
    retiring_.push_back(std::move(r));
  }
  d.replicas.clear();
}

bool ControllerCore::Retire(Replica& r) {
  int64_t waited = clock_->NowMs() - r.since_ms;
  if ((r.drained_seen && waited > options_.table_spread_ms) || waited >= r.drain_ms) {
    ops_->Kill(r.handle);
    return true;
  }
  if (!r.stats_pending && !r.drained_seen) SendStats(r);
  return false;
}

void ControllerCore::Reconcile(Deployment& d) {
  if (deleted_) return;
  int64_t now = clock_->NowMs();
  int running_new = 0, starting_new = 0, running_old = 0;
  for (auto& r : d.replicas) {
    bool current = r->version == d.version;
    if (r->state == State::kStarting && !current) Stop(*r, 0);
    if (r->state == State::kRunning) (current ? running_new : running_old)++;
    if (r->state == State::kStarting) starting_new++;
  }
  bool may_start = now >= d.retry_after_ms;
  int64_t drain = Ms(d.config.request_timeout_s) + 2'000;
  if (running_old > 0) {  // rolling: one new replica ahead, then one old leaves
    if (starting_new == 0 && running_new + running_old < d.target + 1 && may_start) {
      StartReplica(d);
    }
    if (running_new + running_old > d.target) {
      for (auto& r : d.replicas) {
        if (r->state == State::kRunning && r->version != d.version) {
          Stop(*r, drain);
          break;
        }
      }
    }
  } else {
    int live = running_new + starting_new;
    for (; live < d.target && may_start; ++live) StartReplica(d);
    for (auto it = d.replicas.rbegin(); live > d.target && it != d.replicas.rend(); ++it) {
      if ((*it)->state == State::kStarting || (*it)->state == State::kRunning) {
        Stop(**it, (*it)->state == State::kStarting ? 0 : drain);
        live--;
      }
    }
  }
  // Stopping replicas leave once drained (or at once when broken or dead).
  std::erase_if(d.replicas, [&](ReplicaPtr& r) {
    if (r->state != State::kStopping || !Retire(*r)) return false;
    dirty_ = true;
    return true;
  });
  int running = 0;
  for (const auto& r : d.replicas) {
    running += r->state == State::kRunning && r->version == d.version;
  }
  bool settled = running == d.target && static_cast<int>(d.replicas.size()) == d.target;
  std::string status = settled ? "HEALTHY" : (d.start_failures >= 3 ? "DEPLOY_FAILED" : "UPDATING");
  if (status != d.status) {
    d.status = status;
    dirty_ = true;
  }
}

std::string ControllerCore::Unavailable(const Deployment& d) const {
  if (d.config.unloaded) {
    return "unloaded through the repository API (POST /v2/repository/models/" +
           (d.config.models.empty() ? d.config.name : d.config.models[0]) + "/load loads it)";
  }
  // Only when nothing runs: requests then get this at once (503).
  for (const auto& r : d.replicas) {
    if (r->state == State::kRunning) return "";
  }
  for (const auto& r : d.replicas) {
    if (r->state == State::kStarting && !r->pending_reason.empty()) {
      return "it cannot be placed: " + r->pending_reason;
    }
  }
  // A replica that failed to start (e.g. no node can ever hold it) says
  // why at once, rather than holding requests until their timeout.
  if (d.start_failures >= 1) return d.message;
  return "";
}

void ControllerCore::Publish() {
  dirty_ = false;
  RouteTable t;
  t.app = app_;
  t.route_prefix = config_.route_prefix;
  t.ingress = config_.ingress;
  int64_t wall = clock_->WallMs();
  for (const auto& [name, d] : deployments_) {
    DeploymentRoute route;
    route.router = d.config.router;
    route.max_ongoing = d.config.max_ongoing_requests;
    route.max_queued = d.config.max_queued_requests;
    route.hash_header = d.config.hash_header;
    route.request_timeout_s = d.config.request_timeout_s;
    route.exposed = d.config.expose;
    route.models = d.config.models;
    route.unavailable = Unavailable(d);
    for (const auto& r : d.replicas) {
      if (r->state != State::kRunning) continue;
      ReplicaRoute rr;
      rr.id = r->id;
      rr.node = r->node;
      rr.address = r->stats.address;
      rr.models = r->stats.models;
      rr.load.ongoing = r->stats.ongoing;
      rr.load.completed_per_s = r->stats.completed_per_s;
      rr.load.reported_at_ms = r->stats.completed_total > 0 || r->stats.ongoing > 0 ? wall : 0;
      route.replicas.push_back(rr);
    }
    t.deployments[name] = std::move(route);
  }
  // Versions grow across controller restarts too (proxies ignore older ones).
  t.version = table_version_ = std::max(table_version_ + 1, wall);
  publish_(t);
}

Json ControllerCore::Status() const {
  Json aj = {{"route_prefix", config_.route_prefix},
             {"ingress", config_.ingress},
             {"deployments", Json::object()}};
  std::string app_status = deleted_ ? "DELETING" : "RUNNING";
  for (const auto& [dname, d] : deployments_) {
    Json dj = {{"status", d.status},
               {"message", d.message},
               {"target", d.target},
               {"router", d.config.router},
               {"replicas", Json::array()}};
    std::string unavailable = Unavailable(d);
    if (!unavailable.empty()) dj["unavailable"] = unavailable;
    for (const auto& r : d.replicas) {
      Json rj = {{"id", r->id},
                 {"state", StateName(static_cast<int>(r->state))},
                 {"node", r->node},
                 {"address", r->stats.address},
                 {"pid", r->stats.pid},
                 {"ongoing", r->stats.ongoing_now},
                 {"current_version", r->version == d.version}};
      if (!r->pending_reason.empty()) rj["pending"] = r->pending_reason;
      if (!r->stats.models.empty()) rj["models"] = r->stats.models;
      if (!r->stats.gpus.empty()) rj["gpus"] = r->stats.gpus;
      dj["replicas"].push_back(rj);
    }
    if (d.status == "DEPLOY_FAILED") app_status = "DEPLOY_FAILED";
    if (d.status == "UPDATING" && app_status == "RUNNING") app_status = "DEPLOYING";
    aj["deployments"][dname] = dj;
  }
  aj["status"] = app_status;
  return aj;
}

bool ControllerCore::Settled() const {
  if (!configured_ || deleted_) return false;
  for (const auto& [name, d] : deployments_) {
    if (d.status != "HEALTHY") return false;
  }
  return retiring_.empty();
}

}  // namespace lumen::serve
