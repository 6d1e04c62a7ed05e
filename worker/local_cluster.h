// LocalCluster: a GCS and node managers as real processes on this machine,
// on loopback and free ports. Init() without an address starts one for the
// program (tied to it by lifelines, so nothing outlives it); tests and the
// demo start one with several node processes. Not thread-safe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/process.h"
#include "lumen/id.h"

namespace lumen::worker {

struct LocalNodeOptions {
  std::map<std::string, double> resources;  // empty: detected
  int64_t object_store_memory = 0;          // 0: automatic
};

struct LocalClusterOptions {
  std::vector<LocalNodeOptions> nodes = {LocalNodeOptions()};  // the first is the head
  std::string lumen_binary;  // empty: found next to liblumen or this program
  std::string session_dir;   // empty: a new one in LUMEN_HOME
  std::string token;         // empty: a new random one
  int64_t node_timeout_ms = 4000;
  int64_t heartbeat_period_ms = 500;
  bool lifeline = true;  // processes exit when this process does
  int64_t start_timeout_ms = 30'000;
  std::string gcs_storage;  // --storage of the GCS: "" (memory) or redis://HOST:PORT
};

class LocalCluster {
 public:
  static absl::StatusOr<std::unique_ptr<LocalCluster>> Start(LocalClusterOptions options);
  ~LocalCluster();

  const std::string& gcs_address() const { return gcs_address_; }
  const std::string& token() const { return options_.token; }
  const std::string& session_dir() const { return options_.session_dir; }
  size_t num_nodes() const { return nodes_.size(); }
  const NodeId& node_id(size_t i) const { return nodes_[i].id; }
  const std::string& node_address(size_t i) const { return nodes_[i].address; }
  pid_t node_pid(size_t i) const { return nodes_[i].process->pid(); }
  pid_t gcs_pid() const { return gcs_->pid(); }
  // Every process this cluster started, and their workers' parents.
  std::vector<pid_t> pids() const;

  // Starts one more node manager.
  absl::Status AddNode(const LocalNodeOptions& node);
  // SIGKILLs node manager `i` (tests of node loss).
  void KillNode(size_t i);
  // SIGKILLs the GCS; RestartGcs starts it again on the same port (after
  // killing it, if it runs).
  void KillGcs();
  absl::Status RestartGcs();
  // Stops every process (node managers first) and removes what they left
  // in shared memory; idempotent.
  void Stop();

 private:
  struct Node {
    NodeId id;
    std::string address;
    std::string store_prefix;
    std::unique_ptr<Process> process;
  };
  explicit LocalCluster(LocalClusterOptions options) : options_(std::move(options)) {}
  absl::Status StartGcs();

  LocalClusterOptions options_;
  PosixProcessLauncher launcher_;
  std::unique_ptr<Process> gcs_;
  std::string gcs_address_;
  std::vector<Node> nodes_;
  bool stopped_ = false;
};

// The `lumen` executable: $LUMEN_BIN, else bin/lumen beside liblumen's lib/,
// else next to this program.
absl::StatusOr<std::string> FindLumenBinary();
// Parses "key=value key=value" (a ready line).
std::map<std::string, std::string> ParseReadyLine(const std::string& line);
// A new session directory in LUMEN_HOME (older ones beyond the newest
// `keep` are removed once nothing runs or logs there).
absl::StatusOr<std::string> NewSessionDir();
void PruneSessionDirs(const std::string& home, size_t keep);

}  // namespace lumen::worker
