// AppController: the controller actor of one application, its app master.
// It is a detached actor named "controller/<app>" in the "serve" namespace,
// started by the serve manager (manager.h) and restarted by the engine
// whenever it dies: nothing it knows lives only in its memory.
//   - The application's declared config is read from the GCS KV
//     (serve/app/<app>, written by the manager before it calls Sync), at
//     start, on Sync() and every second.
//   - Its replicas are detached actors named "replica/<app>/<id>"; a
//     restarted controller lists them, asks each for its Stats (app,
//     deployment, version, address) and adopts those still declared, so
//     killing the controller restarts no replica and fails no request.
//   - Routing tables go to the GCS KV (serve/routes/<app>) and are pushed
//     to every node proxy (the list is in serve/proxies).
// The reconciliation itself is ControllerCore, run on the actor's own event
// loop; actor methods post to that loop and wait (bounded) for its answer.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/event_loop.h"
#include "lumen/actor.h"
#include "serve/controller_core.h"
#include "serve/dispatcher.h"

namespace lumen::serve {

inline constexpr char kServeNamespace[] = "serve";
std::string ControllerActorName(const std::string& app);
// Replica actors of `app` are named with this prefix.
std::string ReplicaActorPrefix(const std::string& app);
// KV key of an application's declared config: {"version", "config", "deleted"}.
std::string DeclaredKey(const std::string& app);
// KV key of the node proxies' list (actor ids, hex): [{node, actor}].
inline constexpr char kProxiesKey[] = "proxies";

class AppController {
 public:
  static AppController* Create(std::string app);
  ~AppController();

  // Reads the declared config again and applies what changed; "" when
  // done, else why not.
  std::string Sync();
  // ControllerCore::Status() plus "phase" (BOOTING while it adopts).
  std::string Status();
  // True once a deleted application's replicas are all gone.
  bool Deleted();
  // Requests an ingress holds for this app (autoscaling input).
  void ReportLoad(std::string source, std::vector<IngressLoad> load);

 private:
  explicit AppController(std::string app);
  void Boot();
  void Adopt(std::vector<FoundReplica> found);
  void ReadDeclared(std::function<void()> then);
  void Publish(const RouteTable& table);
  void RefreshProxies();
  // Runs `fn` on the loop and waits up to `timeout_ms` for it.
  template <typename T>
  T OnLoop(T fallback, std::function<T()> fn, int64_t timeout_ms = 5'000);

  std::string app_;
  EventLoop loop_;
  std::shared_ptr<LoopGuard> guard_;
  // Loop only, below.
  std::unique_ptr<ReplicaOps> ops_;
  std::unique_ptr<ControllerCore> core_;
  bool booted_ = false;
  int64_t declared_version_ = -1;
  bool declared_deleted_ = false;
  std::vector<ActorId> proxies_;
  std::unique_ptr<PeriodicTimer> tick_;
  std::unique_ptr<PeriodicTimer> sync_;
};

}  // namespace lumen::serve
