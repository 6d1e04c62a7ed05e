// Proxies on every node. The serve process runs the head node's proxy
// itself; ProxyFleet starts a NodeProxy actor on each other live node (and
// again on nodes that join or whose proxy died), pinned there, serving the
// same HTTP port (and gRPC port) on that node. A node proxy learns the
// applications and their routes from the GCS KV, as deployment handles do.
// When several nodes share one host (a local cluster), the port is taken
// by the first: the others take a free port, which status reports.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "lumen/actor.h"
#include "lumen/id.h"
#include "serve/dispatcher.h"
#include "serve/grpc_proxy.h"
#include "serve/metrics.h"
#include "serve/proxy.h"

namespace lumen::serve {

// The actor: the HTTP (and gRPC) ingress on one node.
class NodeProxy {
 public:
  // Throws when it cannot listen at all. grpc_port -1: no gRPC ingress.
  static NodeProxy* Create(std::string host, int http_port, int grpc_port);
  ~NodeProxy();
  // {"node": hex, "http": "host:port", "grpc": "host:port" or ""}
  std::string Address();
  // A routing table pushed by the controller (RouteTable JSON; "": the app
  // was deleted). False if it does not parse.
  bool SetTable(std::string app, std::string table);

 private:
  NodeProxy() = default;
  std::string host_;
  std::unique_ptr<Dispatcher> dispatcher_;
  ServeMetrics metrics_;
  std::unique_ptr<Proxy> proxy_;
  std::unique_ptr<GrpcProxy> grpc_;
};

class ProxyFleet {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int http_port = 8000;
    int grpc_port = -1;
    NodeId head;  // runs the serve process's own proxy
    int64_t period_ms = 1'000;
  };
  explicit ProxyFleet(Options options);
  ~ProxyFleet();  // kills the node proxies

  // [{"node", "http", "grpc", "state": STARTING|RUNNING|FAILED, "message"}]
  // for the other nodes' proxies.
  Json Status() const;
  // Sends a published table to every node proxy (Controller::on_publish).
  void Push(const std::string& app, const std::string& table);

 private:
  struct Member {
    ActorHandle<NodeProxy> actor;
    std::optional<ObjectRef<std::string>> address_call;
    std::string state = "STARTING";
    Json address;
    std::string message;
  };
  void Loop();
  void Tick();

  Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<NodeId, Member> members_;
  // Nodes whose proxy failed: not tried again before then.
  std::map<NodeId, std::chrono::steady_clock::time_point> retry_after_;
  std::thread thread_;
};

}  // namespace lumen::serve
