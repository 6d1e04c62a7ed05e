// The ingress on every node; see node_proxy.h.
#include "serve/node_proxy.h"

#include <stdexcept>

#include "common/logging.h"
#include "lumen/api.h"
#include "serve/app_controller.h"
#include "serve/json_util.h"

namespace lumen::serve {
namespace {

// Starts `start(port)`; when the port is taken (another node on this
// host has it), any free port instead.
template <typename Start>
absl::Status StartOnPortOrAny(int port, const char* what, Start start) {
  absl::Status s = start(port);
  if (s.ok() || port <= 0) return s;
  LUMEN_LOG_INFO("serve: node proxy: {} port {} is taken on this host ({}); using a free one", what,
                 port, s.ToString());
  return start(0);
}

}  // namespace

std::string ProxyActorName(const NodeId& node) { return kProxyActorPrefix + node.Hex(); }

NodeProxy* NodeProxy::Create(std::string host, int http_port, int grpc_port) {
  std::unique_ptr<NodeProxy> p(new NodeProxy());
  p->host_ = host;
  p->source_ = ProxyActorName(GetRuntimeContext().node);
  NodeProxy* self = p.get();
  p->dispatcher_ = std::make_unique<Dispatcher>(Dispatcher::Options{
      .discover_apps = true,
      .on_load = [self](const std::string& app, const std::vector<IngressLoad>& load) {
        self->ReportLoad(app, load);
      }});
  absl::Status s = StartOnPortOrAny(http_port, "HTTP", [&](int port) {
    p->proxy_ = std::make_unique<Proxy>(Proxy::Options{.host = host, .port = port},
                                        p->dispatcher_.get(), &p->metrics_);
    return p->proxy_->Start();
  });
  if (!s.ok()) throw std::runtime_error("node proxy: " + std::string(s.message()));
  if (grpc_port >= 0) {
    s = StartOnPortOrAny(grpc_port, "gRPC", [&](int port) {
      p->grpc_ = std::make_unique<GrpcProxy>(host, port, p->dispatcher_.get(), &p->metrics_);
      return p->grpc_->Start();
    });
    if (!s.ok()) throw std::runtime_error("node proxy: " + std::string(s.message()));
  }
  return p.release();
}

NodeProxy::~NodeProxy() {
  proxy_->Stop();
  if (grpc_) grpc_->Stop();
  dispatcher_.reset();
}

std::string NodeProxy::Address() {
  return DumpJson({{"node", GetRuntimeContext().node.Hex()},
                   {"http", host_ + ":" + std::to_string(proxy_->port())},
                   {"grpc", grpc_ ? host_ + ":" + std::to_string(grpc_->port()) : ""}});
}

bool NodeProxy::SetTable(std::string app, std::string table) {
  if (table.empty()) {
    dispatcher_->RemoveApp(app);
    absl::MutexLock lock(&mu_);
    controllers_.erase(app);  // a new one comes with the app, if it comes back
    return true;
  }
  auto parsed = RouteTable::FromJson(table);
  if (!parsed.ok()) return false;
  dispatcher_->SetTable(*parsed);
  return true;
}

void NodeProxy::ReportLoad(const std::string& app, const std::vector<IngressLoad>& load) {
  ActorId controller;
  bool stale = true;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = controllers_.find(app); it != controllers_.end()) {
      controller = it->second.id;
      // An app deleted and deployed again has a new controller.
      stale = std::chrono::steady_clock::now() - it->second.at > std::chrono::seconds(3);
    }
  }
  if (!controller.IsNil()) {
    // Fire and forget: the next report follows in a moment.
    (void)ActorHandle<AppController>(controller)
        .Task(&AppController::ReportLoad)
        .Remote(source_, load);
    if (!stale) return;
  }
  auto* rt = lumen::internal::CurrentRuntime();
  if (rt == nullptr) return;
  // Not known yet (or restarted): look it up; the next report uses it.
  rt->ListActorsAsync(
      kServeNamespace, ControllerActorName(app),
      [this, app](absl::StatusOr<std::vector<lumen::internal::ActorStateInfo>> found) {
        if (!found.ok()) return;
        for (const auto& a : *found) {
          if (a.name == ControllerActorName(app) &&
              a.state != lumen::internal::ActorStateInfo::kDead) {
            absl::MutexLock lock(&mu_);
            controllers_[app] = {a.id, std::chrono::steady_clock::now()};
          }
        }
      });
}

}  // namespace lumen::serve

LUMEN_REMOTE(lumen::serve::NodeProxy::Create, &lumen::serve::NodeProxy::Address,
             &lumen::serve::NodeProxy::SetTable);
