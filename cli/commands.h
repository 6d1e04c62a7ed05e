// The `lumen` command's subcommands. Each returns the process exit code and
// prints what went wrong (and how to fix it) on stderr.
#pragma once

#include <signal.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace lumen::cli {

// Blocks SIGTERM, SIGINT and SIGHUP in every thread (call before any
// thread starts); WaitForStopSignal() then takes them synchronously.
sigset_t BlockStopSignals();
int WaitForStopSignal(const sigset_t& set);
// Once a stop began: a second stop signal, or `seconds` passing, ends the
// process at once (exit 130 / 1), saying on stderr that `who` did not
// finish stopping and what is left to whoever it was (`what`). So stopping
// always ends, whatever else is already gone.
void StopWithin(const sigset_t& set, int seconds, const std::string& who, const std::string& what);

// Prints "lumen: WHAT" on stderr; returns 1.
int Fail(const std::string& what);
// --token, else $LUMEN_TOKEN, else the token file of a head started here.
std::string ResolveToken(const std::string& flag);
// --address, else $LUMEN_ADDRESS, else the head started on this machine.
absl::StatusOr<std::string> ClusterAddress(const std::string& flag);

struct StartFlags {
  bool head = false;
  std::string address;  // joining: the head's GCS host:port
  std::string host = "127.0.0.1";
  int port = 6389;  // head: GCS port
  std::string resources;
  std::string token;
  int64_t object_store_memory = 0;
  int64_t node_timeout_ms = 4000;
  int64_t heartbeat_ms = 500;
  std::string storage;       // head: where the GCS keeps its tables ("" = memory)
  int metrics_port = 0;      // the node manager's /metrics (0: any free port, -1: none)
  int gcs_metrics_port = 0;  // head: the GCS's
  std::string dashboard_host = "127.0.0.1";
  int dashboard_port = -2;  // head: -2: 8265, else any free; 0: any free; -1: none
};

struct StatusFlags {
  std::string address;
  std::string token;
};

int Start(const StartFlags& flags);
int Stop();
int Status(const StatusFlags& flags);

struct DrainFlags {
  std::string node;  // id prefix or node manager HOST:PORT
  std::string address;
  std::string token;
  int64_t timeout_s = 300;
};
// Drains a node and waits until it has left.
int Drain(const DrainFlags& flags);

struct GcsServerFlags {
  std::string host = "127.0.0.1";
  int port = 6389;
  std::string session_dir;
  int64_t node_timeout_ms = 4000;
  int64_t heartbeat_ms = 500;
  std::string storage;
  int metrics_port = 0;
};
struct NodeManagerFlags {
  std::string gcs;
  std::string host = "127.0.0.1";
  int port = 0;
  std::string resources;
  int64_t object_store_memory = 0;
  bool head = false;
  std::string session_dir;
  int metrics_port = 0;
};

// Foreground daemons; `lumen start` and local clusters run these. They read
// the cluster token from $LUMEN_TOKEN and print a ready line on the ready
// pipe once serving.
int RunGcsServer(const GcsServerFlags& flags);
int RunNodeManager(const NodeManagerFlags& flags);
struct DashboardFlags {
  std::string gcs;
  std::string host = "127.0.0.1";
  int port = 8265;
  bool any_port_if_taken = false;  // port taken: any free one instead
};
int RunDashboard(const DashboardFlags& flags);

// `lumen serve ...` (cli/serve_commands.cc).
struct ServeFlags {
  std::string file;     // run, deploy
  std::string app;      // delete
  std::string address;  // the cluster's GCS (run: empty starts a local one)
  std::string token;
  int nodes = 1;        // run: local cluster nodes
  int http_port = -1;   // start/run: overrides the file's
  int grpc_port = -2;   // start/run: overrides the file's (-1: none; -2: not given)
  int admin_port = -1;  // start/run: the admin API's port (default any free)
  bool json = false;    // status
  std::string admin;    // deploy/status/delete: the admin API, instead of the GCS's word
};
int ServeRun(const ServeFlags& flags);
int ServeStart(const ServeFlags& flags);
int ServeDeploy(const ServeFlags& flags);
int ServeStatus(const ServeFlags& flags);
int ServeDelete(const ServeFlags& flags);
int ServeShutdown(const ServeFlags& flags);
// `lumen metrics targets`: every /metrics endpoint of the cluster (GCS, node
// managers, serve proxies) as a Prometheus file_sd_configs file.
int MetricsTargets(const ServeFlags& flags);

// `lumen job ...` (cli/job_commands.cc).
struct JobFlags {
  std::string address;
  std::string token;
  std::vector<std::string> command;  // submit: after --
  std::vector<std::string> code;     // submit: --code LIB.so, repeatable
  std::vector<std::string> env;      // submit: --env K=V, repeatable
  std::string submission_id;         // submit: --submission-id
  bool no_wait = false;              // submit
  std::string id;                    // status, logs, stop, delete
  bool follow = false;               // logs
  bool json = false;                 // status, list
};
int JobSubmit(const JobFlags& flags);
int JobStatus(const JobFlags& flags);
int JobLogs(const JobFlags& flags);
int JobStop(const JobFlags& flags);
int JobList(const JobFlags& flags);
int JobDelete(const JobFlags& flags);

// `lumen logs` (cli/job_commands.cc): one log, from the node that has it.
struct LogFlags {
  std::string address;
  std::string token;
  std::string worker, task, actor, job, node;  // exactly one
  bool err = false;                            // a worker's stderr
  bool follow = false;
  int tail = 0;  // only the last N lines
};
int Logs(const LogFlags& flags);

// `lumen list KIND`, `lumen get KIND ID`, `lumen summary KIND`.
struct StateFlags {
  std::string kind;  // list: tasks|actors|nodes|jobs|placement-groups; get: task|actor|node
  std::string id;    // get: the id (actors and nodes: or its first characters)
  std::vector<std::string> filters;  // KEY=VALUE
  int limit = 100;
  bool json = false;
  std::string address;
  std::string token;
};
int List(const StateFlags& flags);
// A wall-clock time in ms as UTC in strftime's `format`; "-" for none.
std::string UtcTime(int64_t ms, const char* format);
int Get(const StateFlags& flags);
int Summary(const StateFlags& flags);

}  // namespace lumen::cli
