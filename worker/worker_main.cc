// lumen_worker: the process a node manager starts to run one job's tasks.
// Loads the job's code package, registers with its node manager and runs
// pushed tasks on its main thread until the node manager stops it (or dies:
// the lifeline then ends the process).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "CLI/CLI.hpp"
#include "common/logging.h"
#include "common/process.h"
#include "worker/code_package.h"
#include "worker/core_worker.h"

namespace {

int Run(int argc, char** argv) {
  CLI::App app{"lumen worker: started by a node manager, not by hand"};
  lumen::worker::CoreWorkerOptions options;
  std::string node_id, worker_id, job_id;
  std::vector<std::string> code;
  options.is_driver = false;
  app.add_option("--node-manager", options.node_manager_address, "node manager host:port")
      ->required();
  app.add_option("--gcs", options.gcs_address, "GCS host:port")->required();
  app.add_option("--node-id", node_id)->required();
  app.add_option("--worker-id", worker_id)->required();
  app.add_option("--job-id", job_id)->required();
  app.add_option("--host", options.host, "address to listen on");
  app.add_option("--store-prefix", options.store_prefix)->required();
  app.add_option("--code", code, "shared libraries of the job's code package, in load order");
  CLI11_PARSE(app, argc, argv);

  lumen::InitProcess("worker", lumen::logging::Level::kInfo);
  lumen::WatchLifeline([] {
    lumen::logging::Flush();
    ::_exit(0);
  });
  if (const char* token = std::getenv("LUMEN_TOKEN")) options.token = token;
  ::unsetenv("LUMEN_TOKEN");  // not for the user's child processes
  options.node_id = lumen::NodeId::FromHex(node_id);
  ::setenv("LUMEN_NODE_ID", node_id.c_str(), 1);  // for user code (serve replicas report it)
  options.worker_id = lumen::WorkerId::FromHex(worker_id);
  options.job_id = lumen::JobId::FromHex(job_id);

  absl::Status loaded = lumen::worker::LoadCodePackage(code);
  auto core = std::make_unique<lumen::worker::CoreWorker>(options);
  absl::Status started = core->StartWorker(loaded.ok() ? "" : std::string(loaded.message()));
  if (!started.ok() || !loaded.ok()) {
    LUMEN_LOG_ERROR("worker cannot start: {}", (loaded.ok() ? started : loaded).ToString());
    lumen::logging::Flush();
    ::_exit(1);
  }
  lumen::worker::SetProcessRuntime(core.get());
  // SIGTERM: the node manager no longer needs this worker. The handler
  // only writes to a pipe; a thread then sends what the state API has not
  // had yet and exits. (A handler, not a blocked signal: processes the
  // user's code starts must not inherit SIGTERM blocked.)
  static int term_pipe[2] = {-1, -1};
  static pid_t worker_pid = ::getpid();
  if (::pipe2(term_pipe, O_CLOEXEC | O_NONBLOCK) == 0) {
    std::thread([core = core.get()] {
      pollfd ready{term_pipe[0], POLLIN, 0};
      while (::poll(&ready, 1, -1) < 0 && errno == EINTR) {
      }
      core->FlushTaskEvents(800);
      std::fflush(nullptr);
      lumen::logging::Flush();
      // End as SIGTERM ends a process, so the exit says what happened.
      ::signal(SIGTERM, SIG_DFL);
      ::kill(::getpid(), SIGTERM);
      ::_exit(128 + SIGTERM);
    }).detach();
    struct sigaction on_term {};
    on_term.sa_handler = [](int) {
      int saved = errno;
      if (::getpid() != worker_pid) {
        // A child the user's code forked (without exec): its SIGTERM is its own.
        ::signal(SIGTERM, SIG_DFL);
        ::raise(SIGTERM);
      } else {
        (void)!::write(term_pipe[1], "t", 1);
      }
      errno = saved;
    };
    on_term.sa_flags = SA_RESTART;
    sigemptyset(&on_term.sa_mask);
    ::sigaction(SIGTERM, &on_term, nullptr);
  }
  core->RunTaskLoop();
  lumen::logging::Flush();
  ::_exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    LUMEN_LOG_ERROR("worker failed: {}", e.what());
    lumen::logging::Flush();
    return 1;
  }
}
