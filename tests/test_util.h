// Helpers for tests: waiting on conditions with a deadline (never a bare
// sleep), temporary directories and process trees.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/process.h"
#include "worker/local_cluster.h"

namespace lumen::testing {

// Polls `condition` until it holds or `timeout_ms` passes; returns whether
// it held.
bool WaitUntil(const std::function<bool()>& condition, int64_t timeout_ms = 20'000);

// A fresh directory, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Every live process below `pid` in the process tree.
std::set<pid_t> Descendants(pid_t pid);
pid_t ParentOf(pid_t pid);

// Runs a shell command; returns its exit code and puts stdout+stderr in `output`.
int RunCommand(const std::string& command, std::string* output);

// Whether `dir` holds a file whose name starts with `prefix`.
bool HasFileStartingWith(const std::string& dir, const std::string& prefix);

// A free TCP port on loopback (free when asked; take it soon).
int FreePort();

// A redis-server of its own on a free port, without persistence to disk
// (the GCS's restart is under test, not Redis's).
class RedisServer {
 public:
  RedisServer();
  ~RedisServer();
  // Waits until it answers PING.
  bool Ready();
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/test"; }

 private:
  TempDir dir_;
  int port_;
  PosixProcessLauncher launcher_;
  std::unique_ptr<Process> process_;
};

// Starts a cluster of real processes and makes this program its driver
// (lumen::Init against it).
// `code_paths`: Config::code_paths of the driver.
absl::StatusOr<std::unique_ptr<worker::LocalCluster>> StartAndConnect(
    const worker::LocalClusterOptions& options, const std::vector<std::string>& code_paths = {});

}  // namespace lumen::testing
