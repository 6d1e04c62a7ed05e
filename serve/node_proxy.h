// NodeProxy: the HTTP (and gRPC) ingress on one node, a detached actor
// named "proxy/<node hex>" in the "serve" namespace, pinned to its node
// and restarted by the engine when it dies. The serve manager (manager.h)
// starts one on every live node. A node proxy learns the applications and
// their routing tables from the GCS KV (and from controllers' pushes), and
// reports each app's load to that app's controller (autoscaling; at once
// when requests wait for a deployment without replicas). When several
// nodes share one host (a local cluster), the port is taken by the first:
// the others take a free port, which Address() reports.
//
// Thread-safety: actor methods run on the actor's threads; the dispatcher,
// proxies and load reports have their own (see each).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "lumen/actor.h"
#include "serve/dispatcher.h"
#include "serve/grpc_proxy.h"
#include "serve/metrics.h"
#include "serve/proxy.h"

namespace lumen::serve {

std::string ProxyActorName(const NodeId& node);
inline constexpr char kProxyActorPrefix[] = "proxy/";

class NodeProxy {
 public:
  // Throws when it cannot listen at all. grpc_port -1: no gRPC ingress.
  static NodeProxy* Create(std::string host, int http_port, int grpc_port);
  ~NodeProxy();
  // {"node": hex, "http": "host:port", "grpc": "host:port" or ""}
  std::string Address();
  // A routing table pushed by a controller (RouteTable JSON; "": the app
  // was deleted). False if it does not parse.
  bool SetTable(std::string app, std::string table);

 private:
  NodeProxy() = default;
  // On the dispatcher's loop: sends `load` to the app's controller.
  void ReportLoad(const std::string& app, const std::vector<IngressLoad>& load);

  std::string host_;
  std::string source_;  // this proxy, in load reports
  std::unique_ptr<Dispatcher> dispatcher_;
  ServeMetrics metrics_;
  std::unique_ptr<Proxy> proxy_;
  std::unique_ptr<GrpcProxy> grpc_;
  absl::Mutex mu_;
  struct Known {
    ActorId id;
    std::chrono::steady_clock::time_point at;  // looked up then; again after a while
  };
  std::map<std::string, Known> controllers_ ABSL_GUARDED_BY(mu_);  // by app
};

}  // namespace lumen::serve
