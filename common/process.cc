// Child processes via posix_spawn; see process.h.
#include "common/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "common/logging.h"

extern char** environ;

namespace lumen {

void InitProcess(const std::string& component, logging::Level level) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  logging::Init(component, "", level);
}
namespace {

constexpr int kLifelineFd = 3;
constexpr int kReadyFd = 4;
constexpr char kLifelineEnv[] = "LUMEN_LIFELINE_FD";
constexpr char kReadyEnv[] = "LUMEN_READY_FD";

std::vector<std::string> BuildEnv(const ProcessSpec& spec, bool lifeline, bool ready) {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv(*e);
    size_t eq = kv.find('=');
    if (eq == std::string::npos) continue;
    env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  env.erase(kLifelineEnv);
  env.erase(kReadyEnv);
  for (const auto& [k, v] : spec.env) env[k] = v;
  if (lifeline) env[kLifelineEnv] = std::to_string(kLifelineFd);
  if (ready) env[kReadyEnv] = std::to_string(kReadyFd);
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

absl::Status Errno(const std::string& what) {
  return absl::InternalError(what + ": " + std::strerror(errno));
}

void CloseFd(int* fd) {
  if (*fd >= 0) ::close(*fd);
  *fd = -1;
}

// Moves `fd` to a number above the ones the child's dup2s write, so that one
// dup2 cannot clobber the source of the next.
void MoveHigh(int* fd) {
  if (*fd < 0) return;
  int high = ::fcntl(*fd, F_DUPFD_CLOEXEC, 10);
  if (high >= 0) {
    ::close(*fd);
    *fd = high;
  }
}

}  // namespace

Process::Process(pid_t pid, int lifeline_fd, int ready_fd)
    : pid_(pid), lifeline_fd_(lifeline_fd), ready_fd_(ready_fd) {}

Process::~Process() {
  CloseFd(&lifeline_fd_);
  CloseFd(&ready_fd_);
}

void Process::CloseLifeline() { CloseFd(&lifeline_fd_); }

absl::StatusOr<std::string> Process::WaitReady(int64_t timeout_ms) {
  if (ready_fd_ < 0) return absl::FailedPreconditionError("process has no ready pipe");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string line;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      return absl::DeadlineExceededError("process " + std::to_string(pid_) +
                                         " did not report ready within " +
                                         std::to_string(timeout_ms) + " ms");
    }
    pollfd p{ready_fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 100)));
    if (r < 0 && errno != EINTR) return Errno("poll");
    if (r <= 0) continue;
    char buf[256];
    ssize_t n = ::read(ready_fd_, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // The child closed its end, almost always by exiting: say how.
      WaitForExit(1000);
      return absl::UnavailableError("process " + std::to_string(pid_) +
                                    " exited before it was ready (" + DescribeExit() + ")");
    }
    line.append(buf, n);
    size_t nl = line.find('\n');
    if (nl != std::string::npos) {
      CloseFd(&ready_fd_);
      return line.substr(0, nl);
    }
  }
}

absl::Status Process::Signal(int signal) {
  if (exit_status_ != -1) return absl::OkStatus();
  if (::kill(pid_, signal) != 0 && errno != ESRCH) return Errno("kill");
  return absl::OkStatus();
}

bool Process::TryReap() {
  if (exit_status_ != -1) return true;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_status_ = status;
    return true;
  }
  if (r < 0 && errno == ECHILD) {  // not our child, or reaped elsewhere
    if (!ProcessAlive(pid_)) {
      exit_status_ = 0;
      return true;
    }
  }
  return false;
}

bool Process::WaitForExit(int64_t timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!TryReap()) {
    if (timeout_ms >= 0 && std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

void Process::Terminate(int64_t grace_ms) {
  if (TryReap()) return;
  (void)Signal(SIGTERM);
  if (WaitForExit(grace_ms)) return;
  (void)Signal(SIGKILL);
  WaitForExit(-1);  // SIGKILL cannot be refused
}

std::string Process::DescribeExit() const {
  if (exit_status_ == -1) return "running";
  return DescribeWaitStatus(exit_status_);
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    return "killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
  }
  return "status " + std::to_string(status);
}

absl::StatusOr<std::unique_ptr<Process>> PosixProcessLauncher::Launch(const ProcessSpec& spec) {
  if (spec.argv.empty()) return absl::InvalidArgumentError("empty argv");
  int lifeline[2] = {-1, -1}, ready[2] = {-1, -1};
  if (spec.lifeline && ::pipe2(lifeline, O_CLOEXEC) != 0) return Errno("pipe2");
  if (spec.ready_pipe && ::pipe2(ready, O_CLOEXEC) != 0) {
    CloseFd(&lifeline[0]);
    CloseFd(&lifeline[1]);
    return Errno("pipe2");
  }

  for (int* fd : {&lifeline[0], &lifeline[1], &ready[0], &ready[1]}) MoveHigh(fd);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  if (!spec.stdout_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, 1, spec.stdout_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0600);
  }
  if (!spec.stderr_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, 2, spec.stderr_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0600);
  }
  // dup2 clears FD_CLOEXEC on the target, so the pipes survive exec.
  if (spec.lifeline) posix_spawn_file_actions_adddup2(&actions, lifeline[0], kLifelineFd);
  if (spec.ready_pipe) posix_spawn_file_actions_adddup2(&actions, ready[1], kReadyFd);
  posix_spawn_file_actions_addclosefrom_np(&actions, kReadyFd + 1);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (spec.new_session) flags |= POSIX_SPAWN_SETSID;
  posix_spawnattr_setflags(&attr, flags);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);

  std::vector<std::string> env = BuildEnv(spec, spec.lifeline, spec.ready_pipe);
  std::vector<char*> argv, envp;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, spec.argv[0].c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  CloseFd(&lifeline[0]);
  CloseFd(&ready[1]);
  if (rc != 0) {
    CloseFd(&lifeline[1]);
    CloseFd(&ready[0]);
    return absl::InternalError("cannot start " + spec.argv[0] + ": " + std::strerror(rc));
  }
  return std::make_unique<Process>(pid, lifeline[1], ready[0]);
}

static int FdFromEnv(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return -1;
  int fd = std::atoi(v);
  ::unsetenv(name);  // not for our own children
  return fd;
}

bool WatchLifeline(std::function<void()> on_parent_exit) {
  int fd = FdFromEnv(kLifelineEnv);
  if (fd < 0) return false;
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  std::thread([fd, cb = std::move(on_parent_exit)] {
    char buf[64];
    while (true) {
      ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n > 0 || (n < 0 && errno == EINTR)) continue;
      break;  // EOF or error: the parent is gone
    }
    cb();
  }).detach();
  return true;
}

void SignalReady(const std::string& line) {
  int fd = FdFromEnv(kReadyEnv);
  if (fd < 0) return;
  std::string out = line + "\n";
  ssize_t ignored = ::write(fd, out.data(), out.size());
  (void)ignored;
  ::close(fd);
}

bool ProcessAlive(pid_t pid) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content;
  std::getline(stat, content);
  size_t paren = content.rfind(')');
  if (paren == std::string::npos || paren + 2 >= content.size()) return true;
  return content[paren + 2] != 'Z';
}

}  // namespace lumen
