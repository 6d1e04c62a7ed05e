// ServeInstance: the serve runtime inside one driver process: controller,
// HTTP proxy, and the admin API that `lumen serve deploy/status/delete`
// talk to (loopback only; its address is kept in the GCS KV under
// serve/admin). lumen must be initialised, with the applications' code in
// the job's code package (Config::code_paths).
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "serve/config.h"
#include "serve/controller.h"
#include "serve/dispatcher.h"
#include "serve/grpc_proxy.h"
#include "serve/http_server.h"
#include "serve/node_proxy.h"
#include "serve/proxy.h"

namespace lumen::serve {

inline constexpr char kAdminKey[] = "admin";

struct InstanceOptions {
  std::string http_host = "127.0.0.1";
  int http_port = 8000;  // 0: any free port
  int admin_port = 0;    // 0: any free port
  int grpc_port = -1;    // -1: no gRPC ingress; 0: any free port
  int proxy_threads = 1;
  // A proxy on every node (ProxyFleet), or only in this process.
  bool proxy_every_node = true;
  // The code libraries this process was started with: an app whose code
  // is not among them cannot run here.
  std::vector<std::string> code;
};

class ServeInstance {
 public:
  static absl::StatusOr<std::unique_ptr<ServeInstance>> Start(InstanceOptions options);
  ~ServeInstance();

  absl::Status Deploy(const ServeConfig& config);
  // The controller's status and "proxies": this process's, then the other
  // nodes'.
  Json Status() const;
  Controller& controller() { return *controller_; }
  int http_port() const { return proxy_->port(); }
  int admin_port() const { return admin_->port(); }
  int grpc_port() const;  // -1 without a gRPC ingress

 private:
  explicit ServeInstance(InstanceOptions options);
  void Admin(Request request, HttpServer::Reply reply);

  InstanceOptions options_;
  std::unique_ptr<Dispatcher> dispatcher_;
  ServeMetrics metrics_;
  std::unique_ptr<Controller> controller_;
  std::unique_ptr<Proxy> proxy_;
  std::unique_ptr<GrpcProxy> grpc_;
  std::unique_ptr<HttpServer> admin_;
  mutable std::mutex fleet_mu_;
  std::unique_ptr<ProxyFleet> fleet_;
  std::mutex upload_mu_;
  std::set<std::string> uploaded_;  // digests of shipped code files
};

// The code libraries of the serve runtime's actors (replicas, node
// proxies): they go first in a serve driver's Config::code_paths.
std::vector<std::string> ServeLibraryPaths();

}  // namespace lumen::serve
