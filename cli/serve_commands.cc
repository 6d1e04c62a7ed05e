// `lumen serve run|start|deploy|status|delete|shutdown`. Serve itself runs
// in the cluster (a detached manager actor, controllers and proxies; see
// serve/manager.h): these commands start it where it is missing and talk
// to its admin API with the cluster token, then exit.
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <iomanip>
#include <iostream>

#include "absl/strings/numbers.h"
#include "cli/commands.h"
#include "gcs/gcs_server.h"
#include "lumen/api.h"
#include "rpc/gcs_client.h"
#include "rpc/rpc.h"
#include "serve/client.h"
#include "serve/json_util.h"
#include "serve/route_table.h"

namespace lumen::cli {
namespace {

serve::ManagerOptions OptionsOf(const ServeFlags& f, const serve::ServeConfig* config) {
  serve::ManagerOptions o;
  if (config != nullptr) {
    o.http_host = config->http_host;
    o.http_port = config->http_port;
    o.grpc_port = config->grpc_port;
    o.proxy_location = config->proxy_location;
  }
  if (f.http_port >= 0) o.http_port = f.http_port;
  if (f.grpc_port != -2) o.grpc_port = f.grpc_port;
  if (f.admin_port >= 0) o.admin_port = f.admin_port;
  return o;
}

// Joins the cluster as a short-lived driver whose code package holds
// serve's libraries (the manager's job), and makes sure serve runs.
absl::StatusOr<serve::ServeEndpoints> StartServe(const ServeFlags& f,
                                                 const serve::ManagerOptions& options,
                                                 bool local_cluster) {
  Config c;
  c.address = f.address;
  if (!local_cluster && c.address.empty()) {
    auto address = ClusterAddress(f.address);
    if (!address.ok()) return address.status();
    c.address = *address;
  }
  c.token = ResolveToken(f.token);
  c.local_nodes = std::max(1, f.nodes);
  c.code_paths = serve::ServeLibraryPaths();
  if (absl::Status s = Init(c); !s.ok()) {
    return absl::UnavailableError("cannot join the cluster: " + std::string(s.message()));
  }
  return serve::EnsureServeRunning(options);
}

void PrintEndpoints(const serve::ServeEndpoints& e) {
  const serve::ManagerOptions& o = e.options;
  std::cout << "lumen serve: " << (e.started ? "started" : "already running") << "; HTTP on "
            << o.http_host << ":" << o.http_port << " on every node"
            << (o.grpc_port >= 0 ? ", gRPC on port " + std::to_string(o.grpc_port) : "")
            << ", admin API on " << e.admin << std::endl;
}

// The admin API's HOST:PORT: --admin, else the cluster's word (GCS KV),
// read without joining the cluster. NOT_FOUND when serve does not run.
absl::StatusOr<std::string> AdminAddress(const ServeFlags& f) {
  if (!f.admin.empty()) {
    size_t colon = f.admin.rfind(':');
    int port = 0;
    if (colon == std::string::npos || colon == 0 ||
        !absl::SimpleAtoi(f.admin.substr(colon + 1), &port) || port < 1 || port > 65535) {
      return absl::InvalidArgumentError("--admin " + f.admin +
                                        ": expected HOST:PORT, as `lumen serve start` prints it");
    }
    return f.admin;
  }
  auto address = ClusterAddress(f.address);
  if (!address.ok()) return address.status();
  rpc::GcsClient gcs(*address, ResolveToken(f.token), nullptr);
  proto::KvGetRequest req;
  req.set_ns(serve::kServeKvNamespace);
  req.set_key(serve::kAdminKey);
  auto got =
      rpc::CallSync<proto::KvGetReply>([&](auto cb) { gcs.KvGet(req, cb, {.timeout_ms = 5'000}); });
  if (!got.ok()) {
    return absl::UnavailableError("cannot reach the cluster at " + *address + ": " +
                                  std::string(got.status().message()));
  }
  if (!got->found() || got->value().empty()) {
    return absl::NotFoundError("serve does not run in the cluster at " + *address +
                               ": `lumen serve deploy FILE` starts it (or `lumen serve start`)");
  }
  return got->value();
}

void PrintStatus(const Json& status) {
  for (const auto& p : status.value("proxies", Json::array())) {
    std::string node = p["node"].get<std::string>();
    std::string grpc = p["grpc"].get<std::string>();
    std::string message = p["message"].get<std::string>();
    std::cout << "proxy  node " << node.substr(0, 12) << "  " << p["state"].get<std::string>()
              << "  http://" << p["http"].get<std::string>()
              << (grpc.empty() ? "" : "  grpc " + grpc) << (message.empty() ? "" : "  " + message)
              << "\n";
  }
  const Json& apps = status["applications"];
  if (apps.empty()) {
    std::cout << "no applications\n";
    return;
  }
  for (const auto& [name, app] : apps.items()) {
    std::cout << name << "  " << app["status"].get<std::string>() << "  "
              << (app["route_prefix"].get<std::string>().empty()
                      ? "(no route)"
                      : app["route_prefix"].get<std::string>())
              << "\n";
    for (const auto& [dname, d] : app["deployments"].items()) {
      std::cout << "  " << std::left << std::setw(20) << dname << std::setw(15)
                << d["status"].get<std::string>() << "target " << d["target"].get<int>()
                << "  router " << d["router"].get<std::string>() << "\n";
      if (!d["message"].get<std::string>().empty()) {
        std::cout << "    " << d["message"].get<std::string>() << "\n";
      }
      for (const auto& r : d["replicas"]) {
        std::string node = r["node"].get<std::string>();
        std::cout << "    " << std::setw(18) << r["id"].get<std::string>() << std::setw(10)
                  << r["state"].get<std::string>() << "node "
                  << (node.empty() ? "?" : node.substr(0, 12)) << "\n";
      }
    }
  }
}

}  // namespace

int ServeRun(const ServeFlags& f) {
  auto config = serve::LoadServeConfig(f.file);  // said here, with the line, before anything runs
  if (!config.ok()) {
    Fail(std::string(config.status().message()));
    return 2;
  }
  sigset_t stop_signals = BlockStopSignals();
  bool local = f.address.empty();
  auto serve = StartServe(f, OptionsOf(f, &*config), local);
  if (!serve.ok()) {
    Shutdown();
    return Fail(std::string(serve.status().message()));
  }
  std::string token = internal::CurrentRuntime()->ClusterToken();
  auto deployed = serve::AdminClient(serve->admin, token).Deploy(f.file);
  if (!deployed.ok()) {
    if (local) Shutdown();  // the local cluster goes, and serve with it
    return Fail(std::string(deployed.status().message()));
  }
  PrintEndpoints(*serve);
  for (const auto& w : deployed->value("warnings", Json::array())) {
    std::cerr << "lumen serve: warning: " << w.get<std::string>() << "\n";
  }
  std::cout << "lumen serve: deployed " << f.file << " (Ctrl-C stops"
            << (local ? " serve and its local cluster" : " serve") << ")" << std::endl;
  int sig = WaitForStopSignal(stop_signals);
  std::cout << "lumen serve: stopping (" << strsignal(sig) << "; again to force)" << std::endl;
  StopWithin(stop_signals, 20, "lumen serve",
             local ? "processes of the local cluster" : "serve's actors in the cluster");
  if (!local) {
    // A shared cluster: take serve down (bounded), leave the cluster.
    absl::Status s = serve::StopServe(token, 10'000);
    if (!s.ok()) std::cerr << "lumen serve: could not clean up everything: " << s.message() << "\n";
  }
  Shutdown();
  return 0;
}

int ServeStart(const ServeFlags& f) {
  auto serve = StartServe(f, OptionsOf(f, nullptr), /*local_cluster=*/false);
  if (!serve.ok()) {
    Shutdown();
    return Fail(std::string(serve.status().message()));
  }
  PrintEndpoints(*serve);
  std::cout << "lumen serve: deploy with `lumen serve deploy FILE`; it keeps running after this "
               "command exits (`lumen serve shutdown` stops it)"
            << std::endl;
  Shutdown();
  return 0;
}

int ServeDeploy(const ServeFlags& f) {
  auto config = serve::LoadServeConfig(f.file);  // said here, with the line, before anything runs
  if (!config.ok()) {
    Fail(std::string(config.status().message()));
    return 2;
  }
  auto admin = AdminAddress(f);
  std::string token = ResolveToken(f.token);
  bool joined = false;
  if (!admin.ok() && absl::IsNotFound(admin.status()) && f.admin.empty()) {
    // Serve is missing: start it (it outlives this command).
    auto serve = StartServe(f, OptionsOf(f, &*config), /*local_cluster=*/false);
    joined = true;
    if (!serve.ok()) {
      Shutdown();
      return Fail(std::string(serve.status().message()));
    }
    PrintEndpoints(*serve);
    admin = serve->admin;
    token = internal::CurrentRuntime()->ClusterToken();
  }
  if (!admin.ok()) return Fail(std::string(admin.status().message()));
  auto deployed = serve::AdminClient(*admin, token).Deploy(f.file);
  if (joined) Shutdown();
  if (!deployed.ok()) return Fail(std::string(deployed.status().message()));
  for (const auto& w : deployed->value("warnings", Json::array())) {
    std::cerr << "lumen serve: warning: " << w.get<std::string>() << "\n";
  }
  std::cout << "deployed " << config->applications.size() << " application"
            << (config->applications.size() == 1 ? "" : "s") << " from " << f.file
            << " (lumen serve status shows progress)\n";
  return 0;
}

int ServeStatus(const ServeFlags& f) {
  auto admin = AdminAddress(f);
  if (!admin.ok()) return Fail(std::string(admin.status().message()));
  auto status = serve::AdminClient(*admin, ResolveToken(f.token)).Status();
  if (!status.ok()) return Fail(std::string(status.status().message()));
  if (f.json) {
    std::cout << serve::DumpJson(*status, 2) << "\n";
  } else {
    PrintStatus(*status);
  }
  return 0;
}

int ServeDelete(const ServeFlags& f) {
  auto admin = AdminAddress(f);
  if (!admin.ok()) return Fail(std::string(admin.status().message()));
  auto r = serve::AdminClient(*admin, ResolveToken(f.token)).Delete(f.app);
  if (!r.ok()) return Fail(std::string(r.status().message()));
  std::cout << "deleting " << f.app << " (its replicas stop once drained)\n";
  return 0;
}

int ServeShutdown(const ServeFlags& f) {
  Config c;
  auto address = ClusterAddress(f.address);
  if (!address.ok()) return Fail(std::string(address.status().message()));
  c.address = *address;
  c.token = ResolveToken(f.token);
  if (absl::Status s = Init(c); !s.ok())
    return Fail("cannot join the cluster: " + std::string(s.message()));
  absl::Status s = serve::StopServe(internal::CurrentRuntime()->ClusterToken(), 30'000);
  Shutdown();
  if (!s.ok())
    return Fail("serve stopped, but not everything was cleaned up: " + std::string(s.message()));
  std::cout << "serve stopped\n";
  return 0;
}

int MetricsTargets(const ServeFlags& f) {
  auto address = ClusterAddress(f.address);
  if (!address.ok()) return Fail(std::string(address.status().message()));
  const std::string token = ResolveToken(f.token);
  rpc::GcsClient gcs(*address, token, nullptr);
  auto nodes = rpc::CallSync<proto::GetAllNodesReply>(
      [&](auto cb) { gcs.GetAllNodes(proto::GetAllNodesRequest(), cb, {.timeout_ms = 10'000}); });
  if (!nodes.ok()) {
    return Fail("cannot reach the cluster at " + *address + ": " +
                std::string(nodes.status().message()));
  }
  // Prometheus's file_sd_configs format: groups of targets with labels.
  Json groups = Json::array();
  auto group = [&](const std::string& target, Json labels) {
    groups.push_back({{"targets", Json::array({target})}, {"labels", std::move(labels)}});
  };
  proto::KvGetRequest req;
  req.set_ns(gcs::kMetricsNamespace);
  req.set_key("gcs");
  auto got =
      rpc::CallSync<proto::KvGetReply>([&](auto cb) { gcs.KvGet(req, cb, {.timeout_ms = 5'000}); });
  if (got.ok() && got->found() && !got->value().empty()) {
    group(got->value(), {{"lumen_component", "gcs"}});
  }
  for (const auto& n : nodes->nodes()) {
    if (n.state() != proto::NodeInfo::ALIVE || n.metrics_port() <= 0) continue;
    group(rpc::JoinHostPort(n.address().host(), n.metrics_port()),
          {{"lumen_component", "node_manager"},
           {"lumen_node_id", NodeId::FromBinary(n.node_id()).Hex()}});
  }
  ServeFlags serve_flags = f;
  serve_flags.admin.clear();
  if (auto admin = AdminAddress(serve_flags); admin.ok()) {
    auto status = serve::AdminClient(*admin, token).Status();
    if (status.ok()) {
      for (const auto& p : status->value("proxies", Json::array())) {
        std::string http = p.value("http", "");
        if (http.empty()) continue;
        if (http.rfind("http://", 0) == 0) http = http.substr(7);
        group(http, {{"lumen_component", "serve_proxy"}, {"lumen_node_id", p.value("node", "")}});
      }
    }
  }
  std::cout << serve::DumpJson(groups, 2) << "\n";
  return 0;
}

}  // namespace lumen::cli
