// `lumen gcs-server` and `lumen node-manager`: run one component in the
// foreground until SIGTERM/SIGINT (or until the process that started it with
// a lifeline dies).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "cli/commands.h"
#include "common/logging.h"
#include "common/process.h"
#include "dashboard/dashboard.h"
#include "gcs/gcs_server.h"
#include "node/node_manager.h"
#include "scheduling/resources.h"

namespace lumen::cli {
namespace {

std::string TokenFromEnv() {
  const char* t = std::getenv("LUMEN_TOKEN");
  std::string token = t ? t : "";
  ::unsetenv("LUMEN_TOKEN");
  return token;
}

void StopOnParentExit() {
  WatchLifeline([] { ::kill(::getpid(), SIGTERM); });
}

}  // namespace

sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

int WaitForStopSignal(const sigset_t& set) {
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

void StopWithin(const sigset_t& set, int seconds, const std::string& who, const std::string& what) {
  std::thread([set, seconds, who, what] {
    timespec limit{seconds, 0};
    siginfo_t info;
    int sig = sigtimedwait(&set, &info, &limit);
    std::string why = sig > 0 ? "a second stop signal" : std::to_string(seconds) + " s passed";
    std::cerr << who << ": " << why << " before stopping finished; exiting now (" << what
              << " may be left running)" << std::endl;
    ::_exit(sig > 0 ? 130 : 1);
  }).detach();
}

int RunGcsServer(const GcsServerFlags& flags) {
  sigset_t stop = BlockStopSignals();
  InitProcess("gcs", logging::Level::kInfo);
  gcs::GcsConfig config;
  config.host = flags.host;
  config.port = flags.port;
  config.token = TokenFromEnv();
  if (config.token.empty()) {
    std::cerr << "lumen gcs-server: no cluster token: set LUMEN_TOKEN (lumen start does); a "
                 "server without one would accept every call\n";
    return 2;
  }
  config.session_dir = flags.session_dir;
  config.node_timeout_ms = flags.node_timeout_ms;
  config.heartbeat_period_ms = flags.heartbeat_ms;
  config.metrics_port = flags.metrics_port;
  auto store = gcs::MakeStore(flags.storage);
  if (!store.ok()) {
    std::cerr << "lumen gcs-server: --storage: " << store.status().message() << "\n";
    return 2;
  }
  gcs::GcsServer server(config, RealClock::Get(), std::move(*store));
  if (absl::Status s = server.Start(); !s.ok()) {
    std::cerr << "lumen gcs-server: " << s.message() << "\n";
    return 1;
  }
  SignalReady("port=" + std::to_string(server.port()) +
              " metrics_port=" + std::to_string(server.metrics_port()));
  StopOnParentExit();
  int sig = WaitForStopSignal(stop);
  LUMEN_LOG_INFO("GCS stopping on signal {}", sig);
  StopWithin(stop, 8, "lumen gcs-server", "nothing of its own");
  server.Stop();
  return 0;
}

int RunNodeManager(const NodeManagerFlags& flags) {
  sigset_t stop = BlockStopSignals();
  InitProcess("node", logging::Level::kInfo);
  node::NodeManagerConfig config;
  config.gcs_address = flags.gcs;
  config.token = TokenFromEnv();
  if (config.token.empty()) {
    std::cerr << "lumen node-manager: no cluster token: set LUMEN_TOKEN (lumen start does); a "
                 "server without one would accept every call\n";
    return 2;
  }
  config.host = flags.host;
  config.port = flags.port;
  config.is_head = flags.head;
  config.session_dir = flags.session_dir;
  config.object_store_memory = flags.object_store_memory;
  config.metrics_port = flags.metrics_port;
  if (!flags.resources.empty()) {
    auto r = ResourceSet::FromJson(flags.resources);
    if (!r.ok()) {
      std::cerr << "lumen node-manager: --resources: " << r.status().message() << "\n";
      return 2;
    }
    config.resources = r->ToMap();
  }
  PosixProcessLauncher launcher;
  node::NodeManager nm(config, &launcher);
  static std::atomic<int> exit_code{0};
  nm.SetFatalHandler([](const std::string& why) {
    LUMEN_LOG_ERROR("node manager exiting: {}", why);
    exit_code = 1;
    ::kill(::getpid(), SIGTERM);
  });
  nm.SetLeaveHandler([](const std::string& why) {
    LUMEN_LOG_INFO("node manager leaving: {}", why);
    ::kill(::getpid(), SIGTERM);
  });
  if (absl::Status s = nm.Start(); !s.ok()) {
    std::cerr << "lumen node-manager: " << s.message() << "\n";
    LUMEN_LOG_ERROR("cannot start: {}", s.ToString());
    nm.Stop();
    return 1;
  }
  SignalReady("port=" + std::to_string(nm.port()) + " node_id=" + nm.node_id().Hex() +
              " store_prefix=" + nm.store_prefix() +
              " metrics_port=" + std::to_string(nm.metrics_port()));
  StopOnParentExit();
  int sig = WaitForStopSignal(stop);
  LUMEN_LOG_INFO("node manager stopping on signal {}", sig);
  StopWithin(stop, 8, "lumen node-manager", "its worker processes (they stop with it)");
  nm.Stop();
  return exit_code;
}

int RunDashboard(const DashboardFlags& flags) {
  sigset_t stop = BlockStopSignals();
  InitProcess("dashboard", logging::Level::kInfo);
  dashboard::DashboardOptions options;
  options.gcs_address = flags.gcs;
  options.token = TokenFromEnv();
  options.host = flags.host;
  options.port = flags.port;
  if (options.token.empty()) {
    std::cerr << "lumen dashboard: no cluster token: set LUMEN_TOKEN (lumen start does)\n";
    return 2;
  }
  auto board = std::make_unique<dashboard::Dashboard>(options);
  absl::Status s = board->Start();
  if (!s.ok() && flags.any_port_if_taken && options.port != 0) {
    LUMEN_LOG_INFO("port {} is taken ({}); the dashboard takes any free port", options.port,
                   s.ToString());
    board.reset();
    options.port = 0;
    board = std::make_unique<dashboard::Dashboard>(options);
    s = board->Start();
  }
  if (!s.ok()) {
    std::cerr << "lumen dashboard: " << s.message() << "\n";
    return 1;
  }
  SignalReady("port=" + std::to_string(board->port()));
  StopOnParentExit();
  int sig = WaitForStopSignal(stop);
  LUMEN_LOG_INFO("dashboard stopping on signal {}", sig);
  StopWithin(stop, 8, "lumen dashboard", "nothing of its own");
  board->Stop();
  return 0;
}

}  // namespace lumen::cli
