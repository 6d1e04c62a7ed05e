// The serve client: what `lumen serve ...`, tests and benchmarks use to run
// serve in a cluster and talk to its admin API.
//
//   lumen::Init({.address = ..., .code_paths = lumen::serve::ServeLibraryPaths()});
//   auto serve = lumen::serve::EnsureServeRunning({.http_port = 8000});
//   lumen::serve::AdminClient admin(serve->admin, token);
//   admin.Deploy("serve.yaml");  // uploads the code files it names, then the config
//
// Thread-safe: each call opens its own connection.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lumen/serve.h"
#include "serve/config.h"
#include "serve/manager.h"

namespace lumen::serve {

// The shared libraries serve's actors live in: the code package of a job
// that starts serve must hold them.
std::vector<std::string> ServeLibraryPaths();

struct ServeEndpoints {
  std::string admin;       // host:port of the admin API
  ManagerOptions options;  // what the running manager was started with
  bool started = false;    // made by this call (else it ran already)
};

// Starts the serve manager (a detached actor) unless one runs, and waits
// for it (up to `timeout_ms`). Needs lumen::Init with ServeLibraryPaths()
// in the code paths.
absl::StatusOr<ServeEndpoints> EnsureServeRunning(const ManagerOptions& options,
                                                  int64_t timeout_ms = 60'000);

class AdminClient {
 public:
  // `admin`: host:port.
  AdminClient(std::string admin, std::string token);

  // Parses `path` here (errors name the line), uploads the code files the
  // config names, then deploys it. The reply: the status after the deploy.
  absl::StatusOr<Json> Deploy(const std::string& path);
  // The same for a config in memory; relative code paths from `base_dir`.
  absl::StatusOr<Json> DeployText(const std::string& yaml, const std::string& file_name,
                                  const std::string& base_dir);
  absl::StatusOr<Json> Status();
  absl::StatusOr<Json> Delete(const std::string& app);
  // Deletes every application, stops the proxies (bounded). The manager
  // actor stays until killed (StopServe does both).
  absl::StatusOr<Json> Shutdown();
  // Until every declared application is RUNNING (or one DEPLOY_FAILED,
  // which is returned as an error), up to `timeout_ms`.
  absl::StatusOr<Json> WaitRunning(int64_t timeout_ms);

  // Any call: the response, or why there is none / it failed (with the
  // server's error text).
  absl::StatusOr<Response> Call(const std::string& method, const std::string& target,
                                const std::string& body = "", int64_t timeout_ms = 60'000);

 private:
  std::string host_;
  int port_ = 0;
  std::string token_;
};

// The admin address recorded in the cluster (GCS KV serve/admin), read with
// the running lumen (Init); NOT_FOUND when serve does not run.
absl::StatusOr<std::string> RecordedAdminAddress();

// Shuts serve down and kills the manager actor. Needs lumen::Init.
absl::Status StopServe(const std::string& token, int64_t timeout_ms = 30'000);

}  // namespace lumen::serve
