// `lumen start`, `lumen stop`, `lumen status`.
#include "cli/commands.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "common/file_util.h"
#include "common/process.h"
#include "node/shm.h"
#include "rpc/gcs_client.h"
#include "rpc/rpc.h"
#include "scheduling/resources.h"
#include "worker/local_cluster.h"

namespace lumen::cli {
namespace {

constexpr char kProcessesFile[] = "processes";
constexpr char kAddressFile[] = "address";
constexpr char kTokenFile[] = "token";

std::string Home() { return LumenHome(); }

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

std::string TailOf(const std::string& path, int lines) {
  auto content = ReadFile(path);
  if (!content.ok()) return "";
  std::vector<std::string> all;
  std::istringstream in(*content);
  for (std::string line; std::getline(in, line);) all.push_back(line);
  std::string out;
  for (size_t i = all.size() > size_t(lines) ? all.size() - lines : 0; i < all.size(); ++i) {
    out += "    " + all[i] + "\n";
  }
  return out;
}

// A GCS that `lumen start --head` started here and that still runs.
std::optional<pid_t> RunningHead() {
  auto content = ReadFile(Home() + "/" + kProcessesFile);
  if (!content.ok()) return std::nullopt;
  std::istringstream in(*content);
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    pid_t pid = 0;
    std::string kind;
    fields >> pid >> kind;
    if (kind == "gcs" && ProcessAlive(pid)) return pid;
  }
  return std::nullopt;
}

void Record(pid_t pid, const std::string& kind, const std::string& where) {
  std::ofstream out(Home() + "/" + kProcessesFile, std::ios::app);
  out << pid << " " << kind << " " << where << "\n";
}

// Starts a daemon and waits for its ready line.
absl::StatusOr<std::map<std::string, std::string>> Launch(const std::string& kind,
                                                          std::vector<std::string> args,
                                                          const std::string& token,
                                                          const std::string& log_dir) {
  auto binary = worker::FindLumenBinary();
  if (!binary.ok()) return binary.status();
  ProcessSpec spec;
  spec.argv = {*binary};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env = {{"LUMEN_TOKEN", token}};
  std::string log = log_dir + "/" + kind + "-" + std::to_string(::getpid());
  spec.stdout_path = log + ".out";
  spec.stderr_path = log + ".err";
  spec.new_session = true;
  spec.ready_pipe = true;
  PosixProcessLauncher launcher;
  auto process = launcher.Launch(spec);
  if (!process.ok()) return process.status();
  auto line = (*process)->WaitReady(60'000);
  if (!line.ok()) {
    (*process)->Terminate(2000);
    return absl::Status(line.status().code(),
                        kind + " did not start: " + std::string(line.status().message()) +
                            "\n  last lines of " + spec.stderr_path + ":\n" +
                            TailOf(spec.stderr_path, 8));
  }
  Record((*process)->pid(), kind, log_dir);
  return worker::ParseReadyLine(*line);
}

std::vector<std::string> NodeArgs(const StartFlags& f, const std::string& gcs,
                                  const std::string& session) {
  std::vector<std::string> args = {"node-manager", "--gcs=" + gcs, "--host=" + f.host};
  if (f.head) args.push_back("--head");
  if (!f.resources.empty()) args.push_back("--resources=" + f.resources);
  if (f.object_store_memory > 0) {
    args.push_back("--object-store-memory=" + std::to_string(f.object_store_memory));
  }
  if (!session.empty()) args.push_back("--session-dir=" + session);
  args.push_back("--metrics-port=" + std::to_string(f.metrics_port));
  return args;
}

// This machine's IPv4 addresses, for messages.
std::string LocalAddresses() {
  std::string out;
  ifaddrs* addrs = nullptr;
  if (::getifaddrs(&addrs) != 0) return "127.0.0.1";
  for (ifaddrs* a = addrs; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
    char buf[INET_ADDRSTRLEN];
    auto* in = reinterpret_cast<sockaddr_in*>(a->ifa_addr);
    if (::inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf))) {
      out += (out.empty() ? "" : ", ") + std::string(buf);
    }
  }
  ::freeifaddrs(addrs);
  return out;
}

}  // namespace

int Fail(const std::string& what) {
  std::cerr << "lumen: " << what << "\n";
  return 1;
}

std::string ResolveToken(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("LUMEN_TOKEN"); env && *env) return env;
  auto file = ReadFile(Home() + "/" + kTokenFile);
  return file.ok() ? Trim(*file) : "";
}

int Start(const StartFlags& f) {
  if (f.head == !f.address.empty()) {
    return Fail("say either --head (start a cluster) or --address HOST:PORT (join one)");
  }
  if (f.host == "0.0.0.0" || f.host == "::" || f.host.empty()) {
    return Fail(
        "--host must be an address other nodes can reach this machine at (it is also "
        "what this node advertises), not '" +
        f.host + "'; for example one of: " + LocalAddresses());
  }
  if (!f.resources.empty()) {
    if (auto r = ResourceSet::FromJson(f.resources); !r.ok()) {
      return Fail("--resources: " + std::string(r.status().message()));
    }
  }
  if (absl::Status s = EnsurePrivateDir(Home()); !s.ok()) return Fail(std::string(s.message()));
  std::string token = ResolveToken(f.token);
  std::string gcs = f.address;
  std::string session;
  std::string gcs_metrics;
  if (f.head) {
    if (auto pid = RunningHead()) {
      auto address = ReadFile(Home() + "/" + kAddressFile);
      return Fail("a head started here is already running (GCS pid " + std::to_string(*pid) +
                  (address.ok() ? ", at " + Trim(*address) : std::string()) +
                  "): use it, or `lumen stop` first");
    }
    token = f.token.empty() ? RandomHex(32) : f.token;
    auto dir = worker::NewSessionDir();
    if (!dir.ok()) return Fail(std::string(dir.status().message()));
    session = *dir;
    std::vector<std::string> gcs_args = {"gcs-server",
                                         "--host=" + f.host,
                                         "--port=" + std::to_string(f.port),
                                         "--session-dir=" + session,
                                         "--node-timeout-ms=" + std::to_string(f.node_timeout_ms),
                                         "--heartbeat-ms=" + std::to_string(f.heartbeat_ms),
                                         "--metrics-port=" + std::to_string(f.gcs_metrics_port)};
    if (!f.storage.empty()) gcs_args.push_back("--storage=" + f.storage);
    auto ready = Launch("gcs", gcs_args, token, session + "/logs");
    if (!ready.ok()) return Fail(std::string(ready.status().message()));
    gcs = rpc::JoinHostPort(f.host, std::stoi((*ready)["port"]));
    if (std::string m = (*ready)["metrics_port"]; !m.empty() && m != "0") {
      gcs_metrics = rpc::JoinHostPort(f.host, std::stoi(m));
    }
    // Written once the GCS runs, so a failed start leaves the old ones.
    for (const auto& [file, text] : {std::pair{kTokenFile, token}, std::pair{kAddressFile, gcs}}) {
      if (absl::Status s = WriteFileAtomic(Home() + "/" + file, text + "\n", 0600); !s.ok()) {
        return Fail(std::string(s.message()));
      }
    }
  } else {
    std::string host;
    int port = 0;
    if (absl::Status s = rpc::SplitHostPort(gcs, &host, &port); !s.ok()) {
      return Fail("--address: " + std::string(s.message()));
    }
    if (token.empty()) {
      return Fail(
          "no cluster token: pass --token (printed by `lumen start --head`) or set "
          "LUMEN_TOKEN");
    }
  }
  std::string log_dir = session.empty() ? Home() : session + "/logs";
  auto node = Launch("node", NodeArgs(f, gcs, session), token, log_dir);
  if (!node.ok()) return Fail(std::string(node.status().message()));

  std::cout << (f.head ? "lumen head started\n" : "lumen node joined\n") << "  GCS:   " << gcs
            << "\n"
            << "  node:  " << (*node)["node_id"].substr(0, 12) << " at " << f.host << ":"
            << (*node)["port"] << "\n";
  if (std::string m = (*node)["metrics_port"]; !m.empty() && m != "0") {
    std::cout << "  metrics: http://" << rpc::JoinHostPort(f.host, std::stoi(m)) << "/metrics"
              << (gcs_metrics.empty() ? "" : " and http://" + gcs_metrics + "/metrics (GCS)")
              << " (bearer token; `lumen metrics targets` lists every node's)\n";
  }
  if (f.head && f.dashboard_port != -1) {
    std::vector<std::string> args = {
        "dashboard", "--gcs=" + gcs, "--host=" + f.dashboard_host,
        "--port=" + std::to_string(f.dashboard_port == -2 ? 8265 : f.dashboard_port)};
    if (f.dashboard_port == -2) args.push_back("--any-port-if-taken");
    auto board = Launch("dashboard", args, token, log_dir);
    if (board.ok()) {
      bool any = f.dashboard_host == "0.0.0.0" || f.dashboard_host == "::";
      std::cout << "  dashboard: http://"
                << rpc::JoinHostPort(any ? f.host : f.dashboard_host, std::stoi((*board)["port"]))
                << "/ (log in with the token)\n";
    } else {
      std::cerr << "lumen: warning: the dashboard did not start (the cluster runs without it): "
                << board.status().message() << "\n";
    }
  }
  if (f.head) {
    std::cout << "  token: " << Home() << "/" << kTokenFile << "\n\n"
              << "Join another node:  lumen start --address " << gcs << " --token $(cat " << Home()
              << "/" << kTokenFile << ")\n"
              << "Use it from C++:    LUMEN_ADDRESS=" << gcs << " ./your_program\n"
              << "Stop:               lumen stop\n";
  }
  return 0;
}

int Stop() {
  std::string path = Home() + "/" + kProcessesFile;
  auto content = ReadFile(path);
  if (!content.ok()) {
    std::cout << "lumen: nothing to stop (no processes recorded in " << path << ")\n";
    return 0;
  }
  std::vector<pid_t> pids;
  std::istringstream in(*content);
  for (std::string line; std::getline(in, line);) {
    pid_t pid = static_cast<pid_t>(std::atol(line.c_str()));
    auto cmdline = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
    if (pid > 0 && cmdline.ok() && cmdline->find("lumen") != std::string::npos) {
      pids.push_back(pid);
    }
  }
  // Node managers were recorded after their GCS: stop them first.
  for (auto it = pids.rbegin(); it != pids.rend(); ++it) ::kill(*it, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (pid_t pid : pids) {
    while (ProcessAlive(pid) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (ProcessAlive(pid)) ::kill(pid, SIGKILL);
  }
  SweepStaleShmObjects();
  std::remove(path.c_str());
  std::remove((Home() + "/" + kAddressFile).c_str());
  std::cout << "lumen: stopped " << pids.size() << " process" << (pids.size() == 1 ? "" : "es")
            << "\n";
  return 0;
}

namespace {

std::string Bytes(double b) {
  const char* units[] = {"B", "K", "M", "G", "T"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    u++;
  }
  std::ostringstream out;
  out << std::fixed << std::setprecision(b < 10 && u > 0 ? 1 : 0) << b << units[u];
  return out.str();
}

std::string Amount(const proto::NodeInfo& n, const std::string& name, bool bytes) {
  auto t = n.resources_total().find(name);
  if (t == n.resources_total().end()) return "-";
  auto a = n.resources_available().find(name);
  double avail = a == n.resources_available().end() ? 0 : a->second;
  if (bytes) return Bytes(avail) + "/" + Bytes(t->second);
  std::ostringstream out;
  out << avail << "/" << t->second;
  return out.str();
}

}  // namespace

// --address, else $LUMEN_ADDRESS, else the head started on this machine.
absl::StatusOr<std::string> ClusterAddress(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("LUMEN_ADDRESS"); env && *env) return std::string(env);
  auto file = ReadFile(Home() + "/" + kAddressFile);
  if (!file.ok()) {
    return absl::NotFoundError(
        "no cluster: none was started here (lumen start --head) and neither --address nor "
        "LUMEN_ADDRESS is set");
  }
  return Trim(*file);
}

int Drain(const DrainFlags& f) {
  auto address = ClusterAddress(f.address);
  if (!address.ok()) return Fail(std::string(address.status().message()));
  rpc::GcsClient gcs(*address, ResolveToken(f.token), nullptr);
  auto list = [&] {
    return rpc::CallSync<proto::GetAllNodesReply>(
        [&](auto cb) { gcs.GetAllNodes(proto::GetAllNodesRequest(), cb, {.timeout_ms = 5'000}); });
  };
  auto nodes = list();
  if (!nodes.ok()) {
    return Fail("cannot reach the cluster at " + *address + ": " +
                std::string(nodes.status().message()));
  }
  // NODE: an id (or its first characters) or a node manager's HOST:PORT.
  std::vector<proto::NodeInfo> match;
  for (const auto& n : nodes->nodes()) {
    std::string hex = NodeId::FromBinary(n.node_id()).Hex();
    std::string where = rpc::JoinHostPort(n.address().host(), n.address().port());
    if (n.state() == proto::NodeInfo::ALIVE && (hex.rfind(f.node, 0) == 0 || where == f.node)) {
      match.push_back(n);
    }
  }
  if (match.size() != 1) {
    return Fail(std::string(match.empty() ? "no live node matches '" : "several nodes match '") +
                f.node + "': give more of its id, or its HOST:PORT (see `lumen status`)");
  }
  NodeId id = NodeId::FromBinary(match[0].node_id());
  proto::DrainNodeRequest req;
  req.set_node_id(id.Binary());
  req.set_reason("lumen drain");
  auto drained = rpc::CallSync<proto::DrainNodeReply>(
      [&](auto cb) { gcs.DrainNode(req, cb, {.timeout_ms = 5'000}); });
  if (!drained.ok())
    return Fail("cannot drain node " + id.Short() + ": " + std::string(drained.status().message()));
  std::cout << "draining node " << id.Short() << ": no new work goes there, its actors move"
            << std::endl;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(f.timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    auto now = list();
    if (now.ok()) {
      for (const auto& n : now->nodes()) {
        if (n.node_id() != id.Binary() || n.state() != proto::NodeInfo::DEAD) continue;
        std::cout << "node " << id.Short() << " left the cluster (" << n.death_reason() << ")"
                  << std::endl;
        return 0;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return Fail("node " + id.Short() + " is still working after " + std::to_string(f.timeout_s) +
              " s; it leaves once its tasks finish (wait longer with --timeout-s)");
}

int Status(const StatusFlags& f) {
  auto resolved = ClusterAddress(f.address);
  if (!resolved.ok()) return Fail(std::string(resolved.status().message()));
  std::string address = *resolved;
  rpc::GcsClient gcs(address, ResolveToken(f.token), nullptr);
  auto nodes = rpc::CallSync<proto::GetAllNodesReply>(
      [&](auto cb) { gcs.GetAllNodes(proto::GetAllNodesRequest(), cb, {.timeout_ms = 5'000}); });
  if (!nodes.ok()) {
    return Fail("cannot reach the cluster at " + address + ": " +
                std::string(nodes.status().message()));
  }
  int alive = 0;
  for (const auto& n : nodes->nodes()) alive += n.state() == proto::NodeInfo::ALIVE;
  std::cout << "cluster " << address << ": " << alive << " node" << (alive == 1 ? "" : "s")
            << " alive, " << nodes->nodes_size() - alive << " dead\n\n";
  std::cout << std::left << std::setw(14) << "NODE" << std::setw(22) << "ADDRESS" << std::setw(7)
            << "STATE" << std::setw(6) << "HEAD" << std::setw(11) << "CPU" << std::setw(7) << "GPU"
            << std::setw(17) << "MEMORY" << std::setw(17) << "OBJECT STORE" << std::setw(9)
            << "WORKERS"
            << "TASKS\n";
  for (const auto& n : nodes->nodes()) {
    bool up = n.state() == proto::NodeInfo::ALIVE;
    std::cout << std::setw(14) << NodeId::FromBinary(n.node_id()).Short() << std::setw(22)
              << rpc::JoinHostPort(n.address().host(), n.address().port()) << std::setw(7)
              << (up ? "ALIVE" : "DEAD") << std::setw(6) << (n.is_head() ? "yes" : "")
              << std::setw(11) << Amount(n, "CPU", false) << std::setw(7) << Amount(n, "GPU", false)
              << std::setw(17) << Amount(n, "memory", true) << std::setw(17)
              << (Bytes(static_cast<double>(n.stats().object_store_used())) + "/" +
                  Bytes(static_cast<double>(n.stats().object_store_capacity())))
              << std::setw(9) << n.stats().num_workers() << n.stats().tasks_executed() << "\n";
    if (!up && !n.death_reason().empty()) std::cout << "    died: " << n.death_reason() << "\n";
  }
  return 0;
}

}  // namespace lumen::cli
