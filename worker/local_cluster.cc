// Local clusters of real processes; see local_cluster.h.
#include "worker/local_cluster.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <sstream>

#include "common/file_util.h"
#include "common/logging.h"
#include "node/shm.h"

namespace lumen::worker {
namespace {

std::string ResourcesJson(const std::map<std::string, double>& resources) {
  std::ostringstream out;
  out << "{";
  bool first = true;
  for (const auto& [name, amount] : resources) {
    out << (first ? "" : ",") << "\"" << name << "\":" << amount;
    first = false;
  }
  out << "}";
  return out.str();
}

}  // namespace

absl::StatusOr<std::string> FindLumenBinary() {
  if (const char* env = std::getenv("LUMEN_BIN"); env && *env) {
    if (!FileExists(env))
      return absl::NotFoundError(std::string("LUMEN_BIN=") + env + " does not exist");
    return std::string(env);
  }
  std::vector<std::string> candidates;
  std::string lib = ObjectFileOf(reinterpret_cast<const void*>(&FindLumenBinary));
  if (!lib.empty()) {
    candidates.push_back(std::filesystem::path(lib).parent_path().parent_path() / "bin" / "lumen");
  }
  candidates.push_back(ExecutableDir() + "/lumen");
  for (const auto& c : candidates) {
    if (FileExists(c)) return c;
  }
  return absl::NotFoundError("cannot find the lumen executable (looked in " + candidates[0] +
                             "); set LUMEN_BIN to its path");
}

std::map<std::string, std::string> ParseReadyLine(const std::string& line) {
  std::map<std::string, std::string> out;
  std::istringstream in(line);
  std::string word;
  while (in >> word) {
    size_t eq = word.find('=');
    if (eq != std::string::npos) out[word.substr(0, eq)] = word.substr(eq + 1);
  }
  return out;
}

void PruneSessionDirs(const std::string& home, size_t keep) {
  namespace fs = std::filesystem;
  std::vector<fs::path> sessions;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(home, ec)) {
    if (e.is_directory() && e.path().filename().string().rfind("session-", 0) == 0) {
      sessions.push_back(e.path());
    }
  }
  if (sessions.size() <= keep) return;
  std::sort(sessions.begin(), sessions.end());  // names start with the date: oldest first
  std::string recorded = ReadFile(home + "/processes").value_or("");
  for (size_t i = 0; i + keep < sessions.size(); ++i) {
    // session-<date>-<time>-<pid>-<suffix>: keep it while its creator runs
    // or `lumen start` still records processes that log there.
    std::string name = sessions[i].filename().string();
    std::vector<std::string> parts;
    std::stringstream split(name);
    for (std::string part; std::getline(split, part, '-');) parts.push_back(part);
    pid_t creator = parts.size() >= 4 ? std::atoi(parts[3].c_str()) : 0;
    if (ProcessAlive(creator) || recorded.find(sessions[i].string()) != std::string::npos) continue;
    RemoveAll(sessions[i].string());
  }
}

absl::StatusOr<std::string> NewSessionDir() {
  std::string home = LumenHome();
  LUMEN_RETURN_IF_ERROR(EnsurePrivateDir(home));
  PruneSessionDirs(home, 10);
  std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::localtime(&now));
  std::string dir =
      home + "/session-" + stamp + "-" + std::to_string(::getpid()) + "-" + RandomHex(3);
  LUMEN_RETURN_IF_ERROR(MakeDirs(dir + "/logs", 0700));
  return dir;
}

absl::StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(LocalClusterOptions options) {
  if (options.nodes.empty()) return absl::InvalidArgumentError("a cluster needs at least one node");
  if (options.lumen_binary.empty()) {
    LUMEN_ASSIGN_OR_RETURN(options.lumen_binary, FindLumenBinary());
  }
  if (options.session_dir.empty()) {
    LUMEN_ASSIGN_OR_RETURN(options.session_dir, NewSessionDir());
  }
  if (options.token.empty()) options.token = RandomHex(32);
  std::vector<LocalNodeOptions> nodes = options.nodes;
  std::unique_ptr<LocalCluster> cluster(new LocalCluster(std::move(options)));
  absl::Status s = cluster->StartGcs();
  for (size_t i = 0; s.ok() && i < nodes.size(); ++i) s = cluster->AddNode(nodes[i]);
  if (!s.ok()) {
    cluster->Stop();
    return s;
  }
  return cluster;
}

LocalCluster::~LocalCluster() { Stop(); }

absl::Status LocalCluster::StartGcs() {
  ProcessSpec spec;
  // A GCS started again listens where the first one did.
  std::string port = gcs_address_.empty() ? "0" : gcs_address_.substr(gcs_address_.rfind(':') + 1);
  spec.argv = {options_.lumen_binary,
               "gcs-server",
               "--host=127.0.0.1",
               "--port=" + port,
               "--session-dir=" + options_.session_dir,
               "--node-timeout-ms=" + std::to_string(options_.node_timeout_ms),
               "--heartbeat-ms=" + std::to_string(options_.heartbeat_period_ms)};
  if (!options_.gcs_storage.empty()) spec.argv.push_back("--storage=" + options_.gcs_storage);
  spec.env = {{"LUMEN_TOKEN", options_.token}};
  spec.stdout_path = options_.session_dir + "/logs/gcs.out";
  spec.stderr_path = options_.session_dir + "/logs/gcs.err";
  spec.lifeline = options_.lifeline;
  spec.ready_pipe = true;
  LUMEN_ASSIGN_OR_RETURN(gcs_, launcher_.Launch(spec));
  auto line = gcs_->WaitReady(options_.start_timeout_ms);
  if (!line.ok())
    return Annotate(line.status(), "GCS did not start (see " + spec.stderr_path + ")");
  gcs_address_ = "127.0.0.1:" + ParseReadyLine(*line)["port"];
  return absl::OkStatus();
}

absl::Status LocalCluster::AddNode(const LocalNodeOptions& node) {
  bool head = nodes_.empty();
  size_t index = nodes_.size();
  ProcessSpec spec;
  spec.argv = {options_.lumen_binary, "node-manager", "--gcs=" + gcs_address_,
               "--host=127.0.0.1",    "--port=0",     "--session-dir=" + options_.session_dir};
  if (head) spec.argv.push_back("--head");
  if (!node.resources.empty()) spec.argv.push_back("--resources=" + ResourcesJson(node.resources));
  if (node.object_store_memory > 0) {
    spec.argv.push_back("--object-store-memory=" + std::to_string(node.object_store_memory));
  }
  spec.env = {{"LUMEN_TOKEN", options_.token}};
  std::string log = options_.session_dir + "/logs/node-" + std::to_string(index);
  spec.stdout_path = log + ".out";
  spec.stderr_path = log + ".err";
  spec.lifeline = options_.lifeline;
  spec.ready_pipe = true;
  Node n;
  LUMEN_ASSIGN_OR_RETURN(n.process, launcher_.Launch(spec));
  auto line = n.process->WaitReady(options_.start_timeout_ms);
  if (!line.ok()) {
    n.process->Terminate(1000);
    return Annotate(line.status(), "node manager did not start (see " + spec.stderr_path + ")");
  }
  auto fields = ParseReadyLine(*line);
  n.id = NodeId::FromHex(fields["node_id"]);
  n.address = "127.0.0.1:" + fields["port"];
  n.store_prefix = fields["store_prefix"];
  nodes_.push_back(std::move(n));
  return absl::OkStatus();
}

std::vector<pid_t> LocalCluster::pids() const {
  std::vector<pid_t> out;
  if (gcs_) out.push_back(gcs_->pid());
  for (const auto& n : nodes_) out.push_back(n.process->pid());
  return out;
}

void LocalCluster::KillNode(size_t i) {
  if (i >= nodes_.size()) return;
  (void)nodes_[i].process->Signal(SIGKILL);
  nodes_[i].process->Terminate(1000);
}

void LocalCluster::KillGcs() {
  if (!gcs_) return;
  (void)gcs_->Signal(SIGKILL);
  gcs_->Terminate(1000);
}

absl::Status LocalCluster::RestartGcs() {
  KillGcs();
  return StartGcs();
}

void LocalCluster::Stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& n : nodes_) (void)n.process->Signal(SIGTERM);
  for (auto& n : nodes_) {
    n.process->Terminate(5000);
    RemoveShmObjectsWithPrefix(n.store_prefix);
  }
  if (gcs_) gcs_->Terminate(5000);
}

}  // namespace lumen::worker
