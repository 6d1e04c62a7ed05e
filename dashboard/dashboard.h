// The dashboard: a web page and a JSON HTTP API over the cluster's state,
// served by `lumen dashboard` (which `lumen start --head` starts on the
// head, on loopback unless --dashboard-host says otherwise).
//
//   GET  /                         the page (401 and a token form without a session)
//   POST /api/login {"token"}      a session: cookies lumen_session (HttpOnly)
//                                  and lumen_csrf (sent back as X-Lumen-CSRF)
//   GET  /api/cluster              overview and its history (charts)
//   GET  /api/serve                serve's applications with request figures
//   GET  /api/v0/KIND[?KEY=VALUE&limit=N]   lumen list KIND
//   GET  /api/v0/KIND/ID           lumen get (task, actor, node)
//   GET  /api/v0/summary/KIND      lumen summary
//   GET  /api/v0/logs?worker|task|actor|node|job=ID[&err=1][&tail=N|&offset=N]
//   POST /api/v0/actors/ID/kill
//   /api/jobs/...                  Ray's Jobs REST API (submit, list, get,
//                                  logs, stop, delete)
//
// Every call but the login needs the cluster token (Authorization: Bearer,
// for scripts) or a session cookie; a cookie's POST or DELETE also needs the
// session's CSRF value in X-Lumen-CSRF and, when the browser sends Origin,
// this server's own. Both are checked before a body is read.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"

namespace lumen::dashboard {

struct DashboardOptions {
  std::string gcs_address;
  std::string token;  // the cluster's
  std::string host = "127.0.0.1";
  int port = 8265;  // 0: any free port
  int64_t sample_ms = 2'000;
  size_t history = 300;  // samples kept for the charts
  int api_threads = 4;   // blocking calls to the cluster run on these
};

class Dashboard {
 public:
  explicit Dashboard(DashboardOptions options);
  ~Dashboard();  // Stop()s
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;

  // Binds and starts serving; the error names the address on failure.
  absl::Status Start();
  int port() const;
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lumen::dashboard
