// lumen::Init and the rest of the free functions of include/lumen/api.h.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/process.h"
#include "lumen/api.h"
#include "rpc/node_manager_service.h"
#include "rpc/rpc.h"
#include "worker/code_package.h"
#include "worker/core_worker.h"
#include "worker/local_cluster.h"

namespace lumen {
namespace internal {

std::atomic<Runtime*> g_runtime{nullptr};

Runtime* CurrentRuntime() { return g_runtime.load(std::memory_order_acquire); }

absl::Status NotInitializedError() {
  return absl::FailedPreconditionError("lumen is not initialized: call lumen::Init() first");
}

absl::Status NilRefError() {
  return absl::InvalidArgumentError(
      "Get of a nil ObjectRef (default-constructed, moved from, or made before Init)");
}

}  // namespace internal

namespace {

struct Session {
  std::unique_ptr<worker::LocalCluster> local_cluster;
  std::unique_ptr<worker::CoreWorker> core;
  std::vector<std::unique_ptr<worker::CoreWorker>> retired;
};

std::mutex& SessionMutex() {
  static std::mutex mu;
  return mu;
}

Session& TheSession() {
  static Session* s = new Session();
  return *s;
}

std::set<std::string> LocalHosts() {
  std::set<std::string> hosts = {"127.0.0.1", "localhost", "::1", "0.0.0.0"};
  char name[256] = {0};
  if (::gethostname(name, sizeof(name) - 1) == 0) hosts.insert(name);
  ifaddrs* addrs = nullptr;
  if (::getifaddrs(&addrs) == 0) {
    for (ifaddrs* a = addrs; a; a = a->ifa_next) {
      if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
      char buf[INET_ADDRSTRLEN];
      auto* in = reinterpret_cast<sockaddr_in*>(a->ifa_addr);
      if (::inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf))) hosts.insert(buf);
    }
    ::freeifaddrs(addrs);
  }
  return hosts;
}

// The node manager on this machine: the head's if it runs here, else the
// first live local one.
absl::StatusOr<proto::NodeInfo> FindLocalNode(const std::string& gcs_address,
                                              const std::string& token, int64_t timeout_ms) {
  rpc::GcsClient gcs(gcs_address, token, nullptr);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  absl::StatusOr<proto::GetAllNodesReply> nodes;
  for (int64_t backoff_ms = 20;; backoff_ms = std::min<int64_t>(backoff_ms * 2, 500)) {
    nodes = rpc::CallSync<proto::GetAllNodesReply>([&](auto cb) {
      gcs.GetAllNodes(proto::GetAllNodesRequest(), cb,
                      {.timeout_ms = std::clamp<int64_t>(timeout_ms, 100, 5'000)});
    });
    // Only a GCS that is not up yet is worth waiting for.
    if (nodes.ok() || !absl::IsUnavailable(nodes.status()) ||
        std::chrono::steady_clock::now() + std::chrono::milliseconds(backoff_ms) > deadline) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
  }
  if (!nodes.ok()) {
    return absl::Status(nodes.status().code(),
                        "cannot reach the lumen cluster at " + gcs_address + ": " +
                            std::string(nodes.status().message()) +
                            ". Is it running (lumen status), and is the token right?");
  }
  std::set<std::string> local = LocalHosts();
  const proto::NodeInfo* best = nullptr;
  for (const auto& n : nodes->nodes()) {
    if (n.state() != proto::NodeInfo::ALIVE || !local.count(n.address().host())) continue;
    if (best == nullptr || (n.is_head() && !best->is_head())) best = &n;
  }
  if (best == nullptr) {
    return absl::FailedPreconditionError(
        "no node manager of the cluster at " + gcs_address +
        " runs on this machine: start one with `lumen start --address " + gcs_address + "`");
  }
  return *best;
}

std::string ProgramPath() {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/self/exe", ec).string();
}

std::string ResolveToken(const Config& config) {
  if (!config.token.empty()) return config.token;
  if (const char* env = std::getenv("LUMEN_TOKEN"); env && *env) return env;
  auto file = ReadFile(LumenHome() + "/token");
  if (file.ok()) {
    std::string t = *file;
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
    return t;
  }
  return "";
}

absl::Status StartCore(const Config& config, const std::string& address, const std::string& token,
                       Session* session) {
  LUMEN_ASSIGN_OR_RETURN(proto::NodeInfo node,
                         FindLocalNode(address, token, config.connect_timeout_ms));
  worker::CoreWorkerOptions options;
  options.is_driver = true;
  options.gcs_address = address;
  options.token = token;
  options.node_manager_address = rpc::JoinHostPort(node.address().host(), node.address().port());
  options.host = node.address().host() == "0.0.0.0" ? "127.0.0.1" : node.address().host();
  session->core = std::make_unique<worker::CoreWorker>(options);
  std::vector<std::string> code_paths = config.code_paths;
  // A job started by `lumen job submit --code ...`: its files, on this node.
  if (const char* env = std::getenv("LUMEN_CODE_PATHS"); env && *env) {
    for (absl::string_view p : absl::StrSplit(env, ':', absl::SkipEmpty())) {
      code_paths.emplace_back(p);
    }
  }
  worker::CodePackage package = worker::CollectCodePackage(code_paths);
  return session->core->StartDriver(package, ProgramPath());
}

NodeInfo ToNodeInfo(const proto::NodeInfo& n) {
  NodeInfo info;
  info.id = NodeId::FromBinary(n.node_id());
  info.address = rpc::JoinHostPort(n.address().host(), n.address().port());
  info.alive = n.state() == proto::NodeInfo::ALIVE;
  info.is_head = n.is_head();
  info.resources_total.insert(n.resources_total().begin(), n.resources_total().end());
  info.resources_available.insert(n.resources_available().begin(), n.resources_available().end());
  info.object_store_used = n.stats().object_store_used();
  info.object_store_capacity = n.stats().object_store_capacity();
  info.num_objects = n.stats().num_objects();
  info.num_workers = n.stats().num_workers();
  info.tasks_executed = n.stats().tasks_executed();
  info.leases_granted = n.stats().leases_granted();
  info.objects_pulled = n.stats().objects_pulled();
  info.bytes_pulled = n.stats().bytes_pulled();
  return info;
}

}  // namespace

absl::Status Init(const Config& config) {
  std::lock_guard<std::mutex> lock(SessionMutex());
  Session& session = TheSession();
  if (session.core) return absl::FailedPreconditionError("lumen is already initialized");
  InitProcess("driver", logging::ParseLevel(config.log_level));

  std::string address = config.address;
  if (address.empty()) {
    if (const char* env = std::getenv("LUMEN_ADDRESS"); env && *env) address = env;
  }
  std::string token = ResolveToken(config);
  if (address.empty()) {
    worker::LocalClusterOptions options;
    options.nodes.assign(
        std::max(1, config.local_nodes),
        worker::LocalNodeOptions{config.local_node_resources, config.local_object_store_memory});
    auto cluster = worker::LocalCluster::Start(options);
    if (!cluster.ok()) return Annotate(cluster.status(), "cannot start a local cluster");
    session.local_cluster = std::move(*cluster);
    address = session.local_cluster->gcs_address();
    token = session.local_cluster->token();
  }
  absl::Status started = StartCore(config, address, token, &session);
  if (!started.ok()) {
    if (session.core) session.core->Shutdown();
    session.core.reset();
    session.local_cluster.reset();
    return started;
  }
  internal::g_runtime.store(session.core.get(), std::memory_order_release);
  return absl::OkStatus();
}

void Shutdown() {
  std::lock_guard<std::mutex> lock(SessionMutex());
  Session& session = TheSession();
  internal::g_runtime.store(nullptr, std::memory_order_release);
  if (session.core) {
    session.core->Shutdown();
    // Another thread may still be inside it (an ObjectRef it destroys as
    // Shutdown runs): a stopped core stays allocated, inert, for good.
    session.retired.push_back(std::move(session.core));
  }
  session.local_cluster.reset();
}

bool IsInitialized() { return internal::CurrentRuntime() != nullptr; }

absl::StatusOr<WaitResult> Wait(const std::vector<ObjectRefBase>& refs, int num_ready,
                                int64_t timeout_ms) {
  auto ids = internal::IdsOf(refs);
  if (!ids.ok()) return ids.status();
  auto ready = internal::CurrentRuntime()->Wait(*ids, num_ready, timeout_ms);
  if (!ready.ok()) return ready.status();
  WaitResult result;
  for (size_t i = 0; i < refs.size(); ++i) {
    ((*ready)[i] ? result.ready : result.unready).push_back(refs[i]);
  }
  return result;
}

absl::Status ActorHandleBase::Ready(int64_t timeout_ms) const {
  internal::Runtime* rt = internal::CurrentRuntime();
  if (rt == nullptr) return internal::NotInitializedError();
  if (id_.IsNil()) return absl::InvalidArgumentError("a nil actor handle");
  return rt->WaitActorReady(id_, timeout_ms);
}

absl::Status Kill(const ActorHandleBase& actor, bool no_restart) {
  internal::Runtime* rt = internal::CurrentRuntime();
  if (rt == nullptr) return internal::NotInitializedError();
  if (actor.IsNil()) return absl::InvalidArgumentError("a nil actor handle");
  return rt->KillActor(actor.ID(), no_restart);
}

absl::Status PlacementGroup::Wait(int64_t timeout_ms) const {
  internal::Runtime* rt = internal::CurrentRuntime();
  if (rt == nullptr) return internal::NotInitializedError();
  if (id_.IsNil()) return absl::InvalidArgumentError("a nil placement group");
  return rt->WaitPlacementGroup(id_, timeout_ms);
}

absl::StatusOr<PlacementGroupInfo> PlacementGroup::Info() const {
  internal::Runtime* rt = internal::CurrentRuntime();
  if (rt == nullptr) return internal::NotInitializedError();
  if (id_.IsNil()) return absl::InvalidArgumentError("a nil placement group");
  return rt->GetPlacementGroup(id_, "");
}

absl::StatusOr<PlacementGroup> CreatePlacementGroup(const PlacementGroupOptions& options) {
  internal::Runtime* rt = internal::CurrentRuntime();
  if (rt == nullptr) return internal::NotInitializedError();
  auto id = rt->CreatePlacementGroup(options);
  if (!id.ok()) return id.status();
  return PlacementGroup(*id);
}

absl::Status RemovePlacementGroup(const PlacementGroup& group) {
  internal::Runtime* rt = internal::CurrentRuntime();
  if (rt == nullptr) return internal::NotInitializedError();
  if (group.IsNil()) return absl::InvalidArgumentError("a nil placement group");
  return rt->RemovePlacementGroup(group.ID());
}

absl::StatusOr<PlacementGroup> GetPlacementGroup(const std::string& name) {
  internal::Runtime* rt = internal::CurrentRuntime();
  if (rt == nullptr) return internal::NotInitializedError();
  if (name.empty()) return absl::InvalidArgumentError("GetPlacementGroup needs a name");
  auto info = rt->GetPlacementGroup(PlacementGroupId(), name);
  if (!info.ok()) return info.status();
  return PlacementGroup(info->id);
}

RuntimeContext GetRuntimeContext() {
  std::lock_guard<std::mutex> lock(SessionMutex());
  Session& session = TheSession();
  if (session.core) return session.core->Context();
  if (auto* core = dynamic_cast<worker::CoreWorker*>(internal::CurrentRuntime())) {
    return core->Context();  // inside a worker
  }
  return RuntimeContext();
}

absl::StatusOr<std::vector<NodeInfo>> Nodes(bool ask_each_node) {
  auto* core = dynamic_cast<worker::CoreWorker*>(internal::CurrentRuntime());
  if (core == nullptr) return internal::NotInitializedError();
  auto all = rpc::CallSync<proto::GetAllNodesReply>([&](auto cb) {
    core->gcs()->GetAllNodes(proto::GetAllNodesRequest(), cb, {.timeout_ms = 10'000});
  });
  if (!all.ok()) return all.status();
  std::vector<NodeInfo> out;
  for (proto::NodeInfo n : all->nodes()) {
    if (ask_each_node && n.state() == proto::NodeInfo::ALIVE) {
      rpc::NodeManagerClient client(rpc::JoinHostPort(n.address().host(), n.address().port()),
                                    core->token(), nullptr);
      auto fresh = rpc::CallSync<proto::GetNodeStatsReply>([&](auto cb) {
        client.GetNodeStats(proto::GetNodeStatsRequest(), cb, {.timeout_ms = 5'000});
      });
      if (fresh.ok()) n = fresh->node();
    }
    out.push_back(ToNodeInfo(n));
  }
  return out;
}

namespace worker {
void SetProcessRuntime(internal::Runtime* runtime) {
  internal::g_runtime.store(runtime, std::memory_order_release);
}
}  // namespace worker

}  // namespace lumen
