// Starting and watching child processes: the seam through which the CLI,
// the embedded local cluster and the node manager's worker pool start
// processes. Two optional pipes tie a child to its parent:
//   lifeline: the child's read end reaches EOF when the parent dies, and
//             WatchLifeline() in the child then runs its shutdown callback;
//   ready:    the child writes one line ("port=1234 ...") when it is up,
//             which the parent reads with WaitReady().
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace lumen {
namespace logging {
enum class Level;  // common/logging.h
}

// What every lumen process (driver, GCS, node manager, worker) does first:
// sets up logging for `component`, and turns off abseil's mutex deadlock
// graph, which Debian's abseil keeps on (built without NDEBUG) and which
// then costs every lock gRPC takes.
void InitProcess(const std::string& component, logging::Level level);

struct ProcessSpec {
  std::vector<std::string> argv;                         // argv[0] is the executable's path
  std::vector<std::pair<std::string, std::string>> env;  // added to the parent's
  std::string stdout_path;                               // empty: inherit; files are appended to
  std::string stderr_path;
  bool new_session = false;  // setsid(): outlives the caller's terminal
  bool lifeline = false;
  bool ready_pipe = false;
};

// A started child. Destroying it closes the pipes (ending the child's
// lifeline) but neither kills nor reaps it. Not thread-safe.
class Process {
 public:
  Process(pid_t pid, int lifeline_fd, int ready_fd);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // Reads the child's ready line. DeadlineExceeded after `timeout_ms`;
  // Unavailable when the child exits first.
  absl::StatusOr<std::string> WaitReady(int64_t timeout_ms);
  // Sends `signal`; OK when the process is already gone.
  absl::Status Signal(int signal);
  // Reaps without blocking: true once the child has exited (then
  // exit_status() is set). Only works for children of this process.
  bool TryReap();
  // Waits up to `timeout_ms` (< 0: for as long as it takes) for the child
  // to exit and reaps it; returns whether it did.
  bool WaitForExit(int64_t timeout_ms);
  // Sends SIGTERM, waits up to `grace_ms`, then SIGKILL, and reaps.
  void Terminate(int64_t grace_ms);
  // waitpid() status, -1 while running.
  int exit_status() const { return exit_status_; }
  // "exit code 3", "killed by signal 9".
  std::string DescribeExit() const;
  // Closes the lifeline now, which asks the child to exit.
  void CloseLifeline();

 private:
  pid_t pid_;
  int lifeline_fd_;
  int ready_fd_;
  int exit_status_ = -1;
};

class ProcessLauncher {
 public:
  virtual ~ProcessLauncher() = default;
  virtual absl::StatusOr<std::unique_ptr<Process>> Launch(const ProcessSpec& spec) = 0;
};

// posix_spawn based; closes every inherited descriptor but 0-2 and the pipes.
class PosixProcessLauncher : public ProcessLauncher {
 public:
  absl::StatusOr<std::unique_ptr<Process>> Launch(const ProcessSpec& spec) override;
};

// ---- in the child ----

// When started with a lifeline, runs `on_parent_exit` on a watcher thread once
// the parent dies. Returns false when this process has no lifeline.
bool WatchLifeline(std::function<void()> on_parent_exit);
// Writes the ready line for a parent waiting in WaitReady(); no-op without a
// ready pipe.
void SignalReady(const std::string& line);

// True when `pid` exists (a zombie counts as gone).
bool ProcessAlive(pid_t pid);
// Description of a waitpid() status.
std::string DescribeWaitStatus(int status);

}  // namespace lumen
