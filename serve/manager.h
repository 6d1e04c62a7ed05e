// ServeManager: the serve system's front door in the cluster, a detached
// actor named "manager" in the "serve" namespace that the engine restarts
// whenever it dies (`lumen serve start|deploy|run` create it when it is
// missing; client.h). It
//   - serves the admin API on loopback (its address is kept in the GCS KV,
//     serve/admin) to callers that present the cluster token and a
//     loopback Host: GET/PUT /api/serve/applications,
//     DELETE /api/serve/applications/APP, HEAD/PUT /api/serve/code/SHA256
//     (library bytes, checked against the digest), DELETE /api/serve,
//     POST /api/serve/models/NAME/load|unload (what the proxies' v2
//     repository API asks through Admin);
//   - keeps the declared applications in the GCS KV (serve/apps,
//     serve/app/<name>): nothing it knows lives only in its memory;
//   - keeps a controller actor per application (app_controller.h) and a
//     proxy actor per node (node_proxy.h) alive, making missing ones again.
// Admin requests and the upkeep run one at a time on the manager's own
// event loop; blocking engine calls there carry deadlines.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "common/event_loop.h"
#include "lumen/actor.h"
#include "serve/config.h"
#include "serve/http_server.h"

namespace lumen::serve {

inline constexpr char kManagerActorName[] = "manager";
inline constexpr char kAdminKey[] = "admin";    // "host:port" of the admin API
inline constexpr char kSystemKey[] = "system";  // the manager's options (JSON)

struct ManagerOptions {
  std::string http_host = "127.0.0.1";
  int http_port = 8000;
  int grpc_port = -1;                        // -1: no gRPC ingress; 0: any free port
  int admin_port = 0;                        // 0: any free port
  std::string proxy_location = "EveryNode";  // or HeadOnly
  Json ToJson() const;
  static ManagerOptions FromJson(const Json& j);
};

class ServeManager {
 public:
  // `options_json`: ManagerOptions::ToJson(). Throws when the admin API
  // cannot listen.
  static ServeManager* Create(std::string options_json);
  ~ServeManager();
  // {"admin": "127.0.0.1:PORT", "options": {...}}
  std::string Address();

  // Admin requests (public for tests of the handler; runs on the loop).
  Response Handle(const Request& request);
  // An admin request from a proxy (the v2 repository API's load/unload),
  // checked like one over HTTP: `authorization` is the client's header.
  // {"status": HTTP status, "body": text}.
  std::string Admin(std::string method, std::string path, std::string authorization);

 private:
  explicit ServeManager(ManagerOptions options);
  void Upkeep();
  void KeepProxies();
  void KeepControllers();
  Response Deploy(const Request& request);
  Response Delete(const std::string& app);
  Response Shutdown();
  Response PutCode(const Request& request, const std::string& digest);
  // Scales model `model`'s deployment to zero (unload) or back (load).
  Response ModelControl(const std::string& model, bool load);
  Json Status();
  Json ProxyStatus();
  absl::StatusOr<std::vector<std::string>> DeclaredApps();
  absl::Status WriteApps(const std::vector<std::string>& apps);
  // 421 for a Host that is not ours, 401 for a missing or wrong token.
  static Response Refusal(const Request& request, const std::string& why);
  bool Authorized(const Request& request, std::string* why) const;

  ManagerOptions options_;
  std::string token_;
  EventLoop loop_;
  std::unique_ptr<HttpServer> admin_;
  std::unique_ptr<PeriodicTimer> upkeep_;
  bool shutting_down_ = false;  // loop only
};

}  // namespace lumen::serve
