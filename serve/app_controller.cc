// The controller actor of one application; see app_controller.h.
#include "serve/app_controller.h"

#include <unistd.h>

#include <future>
#include <set>

#include "common/logging.h"
#include "lumen/api.h"
#include "serve/actor_call.h"
#include "serve/json_util.h"
#include "serve/node_proxy.h"

namespace lumen::serve {

std::string ControllerActorName(const std::string& app) { return "controller/" + app; }
std::string ReplicaActorPrefix(const std::string& app) { return "replica/" + app + "/"; }
std::string DeclaredKey(const std::string& app) { return "app/" + app; }

namespace {

// Replicas as detached actors of the engine. Handles are actor ids (hex).
// Every `done` runs on the controller's loop (through the guard).
class EngineReplicaOps : public ReplicaOps {
 public:
  explicit EngineReplicaOps(std::shared_ptr<LoopGuard> guard) : guard_(std::move(guard)) {}

  std::string Start(const ReplicaSpec& spec) override {
    std::string name = ReplicaActorPrefix(spec.app) + spec.id;
    ActorHandle<Replica> actor =
        Actor(Replica::Create)
            .SetName(name, kServeNamespace)
            .SetDetached()  // outlives this controller: a new one adopts it
            .SetResources(spec.resources)
            .SetMaxConcurrency(4)  // control calls; requests come on the data plane
            .SetMaxRestarts(0)     // replaced by the controller instead
            .Remote(spec.app, spec.deployment, spec.id, spec.cls, spec.init_args_json,
                    spec.user_config_json, spec.options_json);
    std::string handle = actor.ID().Hex();
    started_[handle] = {name, std::chrono::steady_clock::now()};
    return handle;
  }

  void Adopted(const std::string& handle, const std::string& name) {
    started_[handle] = {name, std::chrono::steady_clock::now() - std::chrono::hours(1)};
  }

  void Stats(const std::string& handle,
             std::function<void(absl::StatusOr<ReplicaStats>)> done) override {
    WhenReady(Of(handle).Task(&Replica::Stats).Remote(), guard_, std::move(done));
  }
  void Health(const std::string& handle, std::function<void(absl::StatusOr<bool>)> done) override {
    WhenReady(Of(handle).Task(&Replica::Health).Remote(), guard_, std::move(done));
  }
  void Reconfigure(const std::string& handle, const std::string& user_config_json,
                   std::function<void(absl::StatusOr<std::string>)> done) override {
    WhenReady(Of(handle).Task(&Replica::Reconfigure).Remote(user_config_json), guard_,
              std::move(done));
  }
  void State(const std::string& handle,
             std::function<void(absl::StatusOr<ReplicaActorState>)> done) override {
    auto* rt = lumen::internal::CurrentRuntime();
    auto it = started_.find(handle);
    if (rt == nullptr || it == started_.end()) {
      return done(absl::NotFoundError("unknown replica " + handle));
    }
    // What it waits for counts once it waited a while: a replica starting
    // normally takes a moment to get a worker.
    bool long_wait = std::chrono::steady_clock::now() - it->second.since > std::chrono::seconds(2);
    rt->ListActorsAsync(
        kServeNamespace, it->second.name,
        [guard = guard_, handle, long_wait, done = std::move(done)](
            absl::StatusOr<std::vector<lumen::internal::ActorStateInfo>> found) mutable {
          absl::StatusOr<ReplicaActorState> out = absl::NotFoundError("no actor " + handle);
          if (!found.ok()) out = found.status();
          for (const auto& a :
               found.ok() ? *found : std::vector<lumen::internal::ActorStateInfo>{}) {
            if (a.id.Hex() != handle) continue;
            ReplicaActorState s;
            switch (a.state) {
              case lumen::internal::ActorStateInfo::kPending:
                s.kind = ReplicaActorState::Kind::kPending;
                if (long_wait) s.reason = a.pending_reason;
                break;
              case lumen::internal::ActorStateInfo::kAlive:
                s.kind = ReplicaActorState::Kind::kAlive;
                break;
              case lumen::internal::ActorStateInfo::kRestarting:
                s.kind = ReplicaActorState::Kind::kRestarting;
                break;
              default:
                s.kind = ReplicaActorState::Kind::kDead;
                s.reason = a.death_cause;
            }
            out = s;
          }
          guard->Post("controller.state", [done = std::move(done), out = std::move(out)]() mutable {
            done(std::move(out));
          });
        });
  }
  void Kill(const std::string& handle) override {
    started_.erase(handle);
    if (auto* rt = lumen::internal::CurrentRuntime()) {
      rt->KillActorAsync(ActorId::FromHex(handle), /*no_restart=*/true, [handle](absl::Status s) {
        if (!s.ok())
          LUMEN_LOG_WARN("serve: cannot stop replica actor {}: {}", handle, s.ToString());
      });
    }
  }

 private:
  static ActorHandle<Replica> Of(const std::string& handle) {
    return ActorHandle<Replica>(ActorId::FromHex(handle));
  }
  struct Started {
    std::string name;
    std::chrono::steady_clock::time_point since;
  };
  std::shared_ptr<LoopGuard> guard_;
  std::map<std::string, Started> started_;  // loop only
};

}  // namespace

AppController* AppController::Create(std::string app) { return new AppController(std::move(app)); }

AppController::AppController(std::string app) : app_(std::move(app)), loop_("serve_controller") {
  guard_ = std::make_shared<LoopGuard>(&loop_);
  loop_.Start();
  loop_.Post("controller.boot", [this] {
    auto ops = std::make_unique<EngineReplicaOps>(guard_);
    ops_ = std::move(ops);
    core_ =
        std::make_unique<ControllerCore>(app_, ControllerCore::Options{}, RealClock::Get(),
                                         ops_.get(), [this](const RouteTable& t) { Publish(t); });
    Boot();
  });
}

AppController::~AppController() {
  std::promise<void> done;
  loop_.Post("controller.stop", [&] {
    tick_.reset();
    sync_.reset();
    done.set_value();
  });
  done.get_future().wait_for(std::chrono::seconds(5));
  guard_->Close();
  loop_.Stop();
  core_.reset();  // replicas are detached: they stay for the next controller
}

void AppController::Boot() {
  auto* rt = lumen::internal::CurrentRuntime();
  RefreshProxies();  // so the first table reaches them too
  // 1. Which replicas run already (a controller before this one made them)?
  rt->ListActorsAsync(
      kServeNamespace, ReplicaActorPrefix(app_),
      [this, guard = guard_](absl::StatusOr<std::vector<lumen::internal::ActorStateInfo>> listed) {
        guard->Post("controller.listed", [this, listed = std::move(listed)] {
          if (!listed.ok()) {  // the GCS is away: try again
            LUMEN_LOG_WARN("serve: controller of {} cannot list replicas: {}", app_,
                           listed.status().ToString());
            loop_.PostAfter("controller.boot", std::chrono::milliseconds(500), [this] { Boot(); });
            return;
          }
          auto pending = std::make_shared<int>(0);
          auto found = std::make_shared<std::vector<FoundReplica>>();
          auto finished = std::make_shared<bool>(false);
          auto finish = [this, found, finished] {
            if (*finished) return;
            *finished = true;
            Adopt(std::move(*found));
          };
          for (const auto& a : *listed) {
            if (a.state == lumen::internal::ActorStateInfo::kDead) continue;
            ++*pending;
            std::string handle = a.id.Hex();
            static_cast<EngineReplicaOps*>(ops_.get())->Adopted(handle, a.name);
            ops_->Stats(handle, [this, handle, pending, found, finish,
                                 finished](absl::StatusOr<ReplicaStats> s) {
              if (*finished) return;
              if (s.ok() && s->app == app_) {
                found->push_back({handle, *s});
              } else {
                LUMEN_LOG_INFO("serve: {} stops replica actor {} it cannot adopt: {}", app_, handle,
                               s.ok() ? "another app's" : s.status().ToString());
                ops_->Kill(handle);
              }
              if (--*pending == 0) finish();
            });
          }
          if (*pending == 0) return finish();
          // A replica that does not answer in time (still starting, or
          // stuck) is not adopted; it is stopped when the answer comes.
          loop_.PostAfter("controller.adopt_deadline", std::chrono::seconds(3), finish);
        });
      });
}

void AppController::Adopt(std::vector<FoundReplica> found) {
  core_->Adopt(found);
  // 2. What is declared? Then reconcile toward it, and keep doing so.
  ReadDeclared([this] {
    booted_ = true;
    tick_ = loop_.RunEvery("controller.tick", std::chrono::milliseconds(100),
                           [this] { core_->Tick(); });
    sync_ = loop_.RunEvery("controller.sync", std::chrono::seconds(1), [this] {
      ReadDeclared([] {});
      RefreshProxies();
    });
    RefreshProxies();
    core_->Tick();
  });
}

void AppController::ReadDeclared(std::function<void()> then) {
  lumen::internal::CurrentRuntime()->KvGetAsync(
      kServeKvNamespace, DeclaredKey(app_),
      [this, guard = guard_,
       then = std::move(then)](absl::StatusOr<std::optional<std::string>> got) mutable {
        guard->Post(
            "controller.declared", [this, got = std::move(got), then = std::move(then)]() mutable {
              if (!got.ok()) {
                if (!booted_) {  // the GCS is away: try again before going on
                  loop_.PostAfter(
                      "controller.read_declared", std::chrono::milliseconds(500),
                      [this, then = std::move(then)]() mutable { ReadDeclared(std::move(then)); });
                  return;
                }
                return then();
              }
              Json d = got->has_value() ? Json::parse(**got, nullptr, false) : Json();
              bool deleted = !d.is_object() || d.value("deleted", false);
              int64_t version = d.is_object() ? d.value("version", int64_t{-1}) : -1;
              if (deleted) {
                if (!declared_deleted_) {
                  LUMEN_LOG_INFO("serve: application {} is deleted: stopping its replicas", app_);
                  core_->Delete();
                }
                declared_deleted_ = true;
              } else if (version != declared_version_ || declared_deleted_) {
                auto config = AppConfigFromJson(d.value("config", Json()));
                absl::Status s = config.ok() ? core_->Apply(*config) : config.status();
                if (!s.ok()) {
                  LUMEN_LOG_ERROR("serve: application {} version {} cannot be applied: {}", app_,
                                  version, s.ToString());
                } else {
                  declared_deleted_ = false;
                }
                declared_version_ = version;  // not tried again until it changes
              }
              then();
            });
      });
}

void AppController::Publish(const RouteTable& table) {
  std::string json = table.ToJson();
  auto* rt = lumen::internal::CurrentRuntime();
  rt->KvPutAsync(kServeKvNamespace, RoutesKey(app_), json, [app = app_](absl::Status s) {
    if (!s.ok())
      LUMEN_LOG_WARN("serve: cannot store the routing table of {}: {}", app, s.ToString());
  });
  for (const ActorId& p : proxies_) {
    (void)ActorHandle<NodeProxy>(p).Task(&NodeProxy::SetTable).Remote(app_, json);
  }
}

void AppController::RefreshProxies() {
  lumen::internal::CurrentRuntime()->ListActorsAsync(
      kServeNamespace, kProxyActorPrefix,
      [this, guard = guard_](absl::StatusOr<std::vector<lumen::internal::ActorStateInfo>> listed) {
        if (!listed.ok()) return;
        std::vector<ActorId> alive;
        for (const auto& a : *listed) {
          if (a.state == lumen::internal::ActorStateInfo::kAlive) alive.push_back(a.id);
        }
        guard->Post("controller.proxies", [this, alive = std::move(alive)] { proxies_ = alive; });
      });
}

template <typename T>
T AppController::OnLoop(T fallback, std::function<T()> fn, int64_t timeout_ms) {
  auto done = std::make_shared<std::promise<T>>();
  auto got = done->get_future();
  if (!guard_->Post("controller.call", [done, fn = std::move(fn)] { done->set_value(fn()); })) {
    return fallback;
  }
  if (got.wait_for(std::chrono::milliseconds(timeout_ms)) != std::future_status::ready) {
    return fallback;
  }
  return got.get();
}

std::string AppController::Sync() {
  auto done = std::make_shared<std::promise<std::string>>();
  auto got = done->get_future();
  guard_->Post("controller.sync_call", [this, done] {
    if (!booted_) return done->set_value("");  // boot reads it anyway
    ReadDeclared([done] { done->set_value(""); });
  });
  if (got.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    return "the controller is busy: it applies the config when it can";
  }
  return got.get();
}

std::string AppController::Status() {
  return OnLoop<std::string>(
      DumpJson({{"status", "UNKNOWN"}, {"message", "the controller did not answer in time"}}),
      [this] {
        if (!booted_) {
          return DumpJson({{"status", "BOOTING"},
                           {"message", "its controller is (re)starting and adopting replicas"},
                           {"deployments", Json::object()}});
        }
        Json s = core_->Status();
        s["controller_pid"] = ::getpid();
        if (declared_deleted_) s["status"] = "DELETING";
        return DumpJson(s);
      });
}

bool AppController::Deleted() {
  return OnLoop<bool>(false, [this] { return booted_ && declared_deleted_ && core_->Deleted(); });
}

void AppController::ReportLoad(std::string source, std::vector<IngressLoad> load) {
  guard_->Post("controller.load", [this, source = std::move(source), load = std::move(load)] {
    if (booted_) core_->OnIngressLoad(source, load);
  });
}

}  // namespace lumen::serve

LUMEN_REMOTE(lumen::serve::AppController::Create, &lumen::serve::AppController::Sync,
             &lumen::serve::AppController::Status, &lumen::serve::AppController::Deleted,
             &lumen::serve::AppController::ReportLoad);
