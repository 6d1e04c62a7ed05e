// Proxies on every node; see node_proxy.h.
#include "serve/node_proxy.h"

#include <set>
#include <stdexcept>

#include "common/logging.h"
#include "lumen/api.h"
#include "serve/controller.h"

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

NodeProxy* NodeProxy::Create(std::string host, int http_port, int grpc_port) {
  std::unique_ptr<NodeProxy> p(new NodeProxy());
  p->host_ = host;
  p->dispatcher_ = std::make_unique<Dispatcher>(Dispatcher::Options{.discover_apps = true});
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
  return Json{{"node", GetRuntimeContext().node.Hex()},
              {"http", host_ + ":" + std::to_string(proxy_->port())},
              {"grpc", grpc_ ? host_ + ":" + std::to_string(grpc_->port()) : ""}}
      .dump();
}

bool NodeProxy::SetTable(std::string app, std::string table) {
  if (table.empty()) {
    dispatcher_->RemoveApp(app);
    return true;
  }
  auto parsed = RouteTable::FromJson(table);
  if (!parsed.ok()) return false;
  dispatcher_->SetTable(*parsed);
  return true;
}

ProxyFleet::ProxyFleet(Options options) : options_(std::move(options)) {
  thread_ = std::thread([this] { Loop(); });
}

ProxyFleet::~ProxyFleet() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (auto& [node, m] : members_) (void)Kill(m.actor);
}

Json ProxyFleet::Status() const {
  std::lock_guard<std::mutex> lock(mu_);
  Json out = Json::array();
  for (const auto& [node, m] : members_) {
    auto field = [&](const char* name) {
      return m.address.is_object() ? m.address.value(name, "") : "";
    };
    out.push_back({{"node", node.Hex()},
                   {"http", field("http")},
                   {"grpc", field("grpc")},
                   {"state", m.state},
                   {"message", m.message}});
  }
  return out;
}

void ProxyFleet::Push(const std::string& app, const std::string& table) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [node, m] : members_) {
    if (m.state != "FAILED") (void)m.actor.Task(&NodeProxy::SetTable).Remote(app, table);
  }
}

void ProxyFleet::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    lock.unlock();
    Tick();
    lock.lock();
    cv_.wait_for(lock, std::chrono::milliseconds(options_.period_ms), [&] { return stop_; });
  }
}

void ProxyFleet::Tick() {
  auto nodes = Nodes(/*ask_each_node=*/false);
  if (!nodes.ok()) return;  // the GCS is away: keep what runs
  std::set<NodeId> alive;
  for (const auto& n : *nodes) {
    if (n.alive && n.id != options_.head) alive.insert(n.id);
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = members_.begin(); it != members_.end();) {
    Member& m = it->second;
    if (auto got = TakeIfReady(m.address_call)) {
      if (got->ok()) {
        m.state = "RUNNING";
        m.address = Json::parse(**got, nullptr, /*allow_exceptions=*/false);
        m.message.clear();
      } else {
        m.state = "FAILED";
        m.message = std::string(got->status().message());
        LUMEN_LOG_WARN("serve: the proxy on node {} failed: {}", it->first.Short(), m.message);
      }
    }
    if (!alive.count(it->first) || (m.state == "FAILED" && !m.address_call)) {
      // Gone with its node, or dead: made again a little later if the node
      // is still there.
      (void)Kill(m.actor);
      retry_after_[it->first] = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      it = members_.erase(it);
      continue;
    }
    if (m.state == "RUNNING" && !m.address_call) {  // still alive?
      m.address_call = m.actor.Task(&NodeProxy::Address).Remote();
    }
    ++it;
  }
  auto now = std::chrono::steady_clock::now();
  for (const NodeId& node : alive) {
    if (members_.count(node)) continue;
    if (auto r = retry_after_.find(node); r != retry_after_.end() && now < r->second) continue;
    Member m;
    m.actor = Actor(NodeProxy::Create)
                  .SetSchedulingStrategy(SchedulingStrategy::NodeAffinity(node))
                  .SetMaxRestarts(0)
                  .SetMaxConcurrency(2)
                  .Remote(options_.host, options_.http_port, options_.grpc_port);
    m.address_call = m.actor.Task(&NodeProxy::Address).Remote();
    members_.emplace(node, std::move(m));
  }
}

}  // namespace lumen::serve

LUMEN_REMOTE(lumen::serve::NodeProxy::Create, &lumen::serve::NodeProxy::Address,
             &lumen::serve::NodeProxy::SetTable);
