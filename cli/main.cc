// `lumen`: start, join, inspect and stop clusters.
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "CLI/CLI.hpp"
#include "cli/commands.h"

namespace {

// --token TOKEN and --token-file PATH (the file's first line; keeps the
// token out of `ps` and shell history). The flag wins over LUMEN_TOKEN and
// the token file of a cluster started here.
void AddTokenOptions(CLI::App* c, std::string* token, const std::string& what) {
  c->add_option("--token", *token, what + " (shows in ps: prefer --token-file or LUMEN_TOKEN)");
  c->add_option_function<std::string>(
       "--token-file",
       [token](const std::string& path) {
         std::ifstream in(path);
         std::string line;
         if (!in || !std::getline(in, line)) {
           throw CLI::ValidationError("--token-file", "cannot read a token from '" + path + "'");
         }
         while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
         if (line.empty()) throw CLI::ValidationError("--token-file", "'" + path + "' is empty");
         *token = line;
       },
       "read the cluster token from this file")
      ->excludes("--token");
}

// Overwrites the value of --token in our own argv, so that `ps` and
// /proc/PID/cmdline stop showing it once the flags are parsed.
void ScrubToken(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--token") == 0 && i + 1 < argc) {
      std::memset(argv[i + 1], '*', std::strlen(argv[i + 1]));
    } else if (std::strncmp(argv[i], "--token=", 8) == 0) {
      std::memset(argv[i] + 8, '*', std::strlen(argv[i] + 8));
    }
  }
}

int Run(int argc, char** argv) {
  CLI::App app{"lumen: distributed tasks, objects and serving for C++"};
  app.require_subcommand(1);

  lumen::cli::StartFlags start;
  auto* s = app.add_subcommand("start", "start a head (--head) or join a cluster (--address)");
  s->add_flag("--head", start.head, "start the GCS and a node manager on this machine");
  s->add_option("--address", start.address, "join the cluster whose GCS is at HOST:PORT");
  s->add_option("--host", start.host, "address to listen on (default 127.0.0.1)");
  s->add_option("--port", start.port, "head: GCS port (default 6389; 0 picks a free one)")
      ->check(CLI::Range(0, 65535));
  s->add_option("--resources", start.resources,
                "resources of this node as JSON, e.g. '{\"CPU\": 4, \"GPU\": 1}' "
                "(default: detected)");
  AddTokenOptions(s, &start.token, "cluster token (default: made by the head)");
  s->add_option("--object-store-memory", start.object_store_memory,
                "bytes of shared memory for objects (default: 30% of free memory)")
      ->check(CLI::NonNegativeNumber);
  s->add_option("--node-timeout-ms", start.node_timeout_ms,
                "head: declare a node dead after this long without a heartbeat")
      ->check(CLI::Range(int64_t{200}, int64_t{600'000}));
  s->add_option("--heartbeat-ms", start.heartbeat_ms, "head: heartbeat period of nodes")
      ->check(CLI::Range(int64_t{10}, int64_t{60'000}));
  s->add_option("--storage", start.storage,
                "head: keep the GCS's tables in redis://HOST:PORT[/NAMESPACE], so a GCS "
                "started again finds the cluster (default: in memory, lost with the GCS)");
  s->add_option("--metrics-port", start.metrics_port,
                "Prometheus /metrics of this node's node manager, on --host (default 0: any "
                "free port; -1: none)")
      ->check(CLI::Range(-1, 65535));
  s->add_option("--gcs-metrics-port", start.gcs_metrics_port,
                "head: Prometheus /metrics of the GCS (default 0: any free port; -1: none)")
      ->check(CLI::Range(-1, 65535));
  s->add_option("--dashboard-host", start.dashboard_host,
                "head: the address the dashboard listens on (default 127.0.0.1: this machine "
                "only; 0.0.0.0 exposes it, behind the cluster token)");
  s->add_option("--dashboard-port", start.dashboard_port,
                "head: the dashboard's port (default 8265, or any free port when that is "
                "taken; 0: any free port; -1: no dashboard)")
      ->check(CLI::Range(-1, 65535));

  auto* stop = app.add_subcommand("stop", "stop what `lumen start` started on this machine");

  lumen::cli::StatusFlags status;
  auto* st = app.add_subcommand("status", "show the nodes of a cluster and their resources");
  st->add_option("--address", status.address, "GCS HOST:PORT (default: the one started here)");
  AddTokenOptions(st, &status.token, "cluster token");

  lumen::cli::DrainFlags drain;
  auto* dr = app.add_subcommand(
      "drain", "stop new work on a node, move its actors elsewhere, and let it leave once idle");
  dr->add_option("node", drain.node, "node id (or its first characters) or HOST:PORT")->required();
  dr->add_option("--address", drain.address, "GCS HOST:PORT (default: the one started here)");
  AddTokenOptions(dr, &drain.token, "cluster token");
  dr->add_option("--timeout-s", drain.timeout_s, "how long to wait for the node to leave")
      ->check(CLI::Range(int64_t{1}, int64_t{86'400}));

  lumen::cli::GcsServerFlags gcs;
  auto* g = app.add_subcommand("gcs-server", "run a GCS in the foreground (used by start)");
  g->group("Internal");
  g->add_option("--host", gcs.host);
  g->add_option("--port", gcs.port)->check(CLI::Range(0, 65535));
  g->add_option("--session-dir", gcs.session_dir);
  g->add_option("--node-timeout-ms", gcs.node_timeout_ms);
  g->add_option("--heartbeat-ms", gcs.heartbeat_ms);
  g->add_option("--storage", gcs.storage, "redis://HOST:PORT[/NAMESPACE] (default: in memory)");
  g->add_option("--metrics-port", gcs.metrics_port, "0: any free port; -1: none")
      ->check(CLI::Range(-1, 65535));

  lumen::cli::DashboardFlags dash;
  auto* db =
      app.add_subcommand("dashboard", "serve the dashboard in the foreground (used by start)");
  db->group("Internal");
  db->add_option("--gcs", dash.gcs, "GCS HOST:PORT")->required();
  db->add_option("--host", dash.host);
  db->add_option("--port", dash.port, "0: any free port")->check(CLI::Range(0, 65535));
  db->add_flag("--any-port-if-taken", dash.any_port_if_taken);

  lumen::cli::NodeManagerFlags nm;
  auto* n = app.add_subcommand("node-manager", "run a node manager in the foreground");
  n->group("Internal");
  n->add_option("--gcs", nm.gcs, "GCS HOST:PORT")->required();
  n->add_option("--host", nm.host);
  n->add_option("--port", nm.port)->check(CLI::Range(0, 65535));
  n->add_option("--resources", nm.resources);
  n->add_option("--object-store-memory", nm.object_store_memory);
  n->add_flag("--head", nm.head);
  n->add_option("--session-dir", nm.session_dir);
  n->add_option("--metrics-port", nm.metrics_port, "0: any free port; -1: none")
      ->check(CLI::Range(-1, 65535));

  lumen::cli::ServeFlags sv;
  auto* serve = app.add_subcommand("serve", "run C++ deployments behind HTTP");
  serve->require_subcommand(1);
  auto cluster_flags = [&](CLI::App* c) {
    c->add_option("--address", sv.address, "GCS HOST:PORT (default: the one started here)");
    AddTokenOptions(c, &sv.token, "cluster token");
  };
  auto* srun = serve->add_subcommand(
      "run", "run the applications of FILE in the foreground (a local cluster unless --address)");
  srun->add_option("file", sv.file, "serve config (YAML)")->required();
  srun->add_option("--address", sv.address, "join this cluster instead of starting a local one");
  AddTokenOptions(srun, &sv.token, "cluster token");
  srun->add_option("--nodes", sv.nodes, "local cluster: node processes")->check(CLI::Range(1, 64));
  srun->add_option("--http-port", sv.http_port, "override the file's http.port (0: any free)")
      ->check(CLI::Range(0, 65535));
  auto* sstart = serve->add_subcommand(
      "start", "start serve in a running cluster (it keeps running after this command exits)");
  cluster_flags(sstart);
  sstart
      ->add_option("--http-port", sv.http_port,
                   "HTTP port on every node (default 8000; 0: any free)")
      ->check(CLI::Range(0, 65535));
  sstart->add_option("--grpc-port", sv.grpc_port, "gRPC ingress port (default none; 0: any free)")
      ->check(CLI::Range(0, 65535));
  sstart->add_option("--admin-port", sv.admin_port, "admin API port on loopback (default any free)")
      ->check(CLI::Range(0, 65535));
  auto admin_flag = [&](CLI::App* c) {
    c->add_option("--admin", sv.admin,
                  "the admin API's HOST:PORT (printed by serve start), instead of asking the "
                  "cluster; the cluster token is still needed");
  };
  auto* sdeploy = serve->add_subcommand(
      "deploy", "make FILE's applications the running ones (only what changed changes)");
  sdeploy->add_option("file", sv.file, "serve config (YAML)")->required();
  cluster_flags(sdeploy);
  admin_flag(sdeploy);
  auto* sstatus = serve->add_subcommand("status", "applications, deployments and replicas");
  cluster_flags(sstatus);
  admin_flag(sstatus);
  sstatus->add_flag("--json", sv.json, "print the status as JSON");
  auto* sdelete = serve->add_subcommand("delete", "stop an application and its replicas");
  sdelete->add_option("app", sv.app, "application name")->required();
  cluster_flags(sdelete);
  admin_flag(sdelete);

  auto* sshutdown = serve->add_subcommand(
      "shutdown", "delete every application and stop serve (proxies, controllers, manager)");
  cluster_flags(sshutdown);

  auto* metrics = app.add_subcommand("metrics", "Prometheus: where to scrape the cluster");
  metrics->require_subcommand(1);
  auto* mtargets = metrics->add_subcommand(
      "targets",
      "print every /metrics endpoint (GCS, node managers, serve proxies) as a Prometheus "
      "file_sd_configs file");
  cluster_flags(mtargets);

  lumen::cli::JobFlags job;
  auto* jobs = app.add_subcommand("job", "run drivers on the cluster and follow them");
  jobs->require_subcommand(1);
  auto job_flags = [&](CLI::App* c) {
    c->add_option("--address", job.address, "GCS HOST:PORT (default: the one started here)");
    AddTokenOptions(c, &job.token, "cluster token");
  };
  auto* jsubmit = jobs->add_subcommand(
      "submit", "run CMD ARGS as a driver on the head node, and follow its output until it ends");
  jsubmit->add_option("--code", job.code,
                      "a shared library for the job's workers (repeatable; uploaded)");
  jsubmit->add_option("--env", job.env, "NAME=VALUE for the driver (repeatable)");
  jsubmit->add_option("--submission-id", job.submission_id, "the job's id (default: made up)");
  jsubmit->add_flag("--no-wait", job.no_wait, "print the id and return at once");
  // The command is what follows `--` (taken off argv before parsing, so
  // its own options stay its own).
  jsubmit->footer("Runs: lumen job submit [options] -- CMD ARGS");
  job_flags(jsubmit);
  auto* jstatus = jobs->add_subcommand("status", "a job's status and times");
  jstatus->add_option("id", job.id, "submission id")->required();
  jstatus->add_flag("--json", job.json, "JSON");
  job_flags(jstatus);
  auto* jlogs = jobs->add_subcommand("logs", "a job's output (stdout and stderr)");
  jlogs->add_option("id", job.id, "submission id")->required();
  jlogs->add_flag("--follow,-f", job.follow, "keep printing until the job ends");
  job_flags(jlogs);
  auto* jstop = jobs->add_subcommand("stop", "stop a job (SIGTERM, SIGKILL after 5 s)");
  jstop->add_option("id", job.id, "submission id")->required();
  job_flags(jstop);
  auto* jlist = jobs->add_subcommand("list", "every job, newest first");
  jlist->add_flag("--json", job.json, "JSON");
  job_flags(jlist);
  auto* jdelete = jobs->add_subcommand("delete", "forget a job that ended");
  jdelete->add_option("id", job.id, "submission id")->required();
  job_flags(jdelete);

  lumen::cli::LogFlags logf;
  auto* logs = app.add_subcommand(
      "logs", "a worker's, task's, actor's, job's or node manager's log, from its node");
  auto* lw = logs->add_option("--worker", logf.worker, "worker id");
  auto* lt = logs->add_option("--task", logf.task, "task id: the worker that ran it last");
  auto* la = logs->add_option("--actor", logf.actor,
                              "actor id (or its first characters): the worker hosting it, or "
                              "the last one");
  auto* lj = logs->add_option("--job", logf.job, "submission id (lumen job logs)");
  auto* ln = logs->add_option("--node", logf.node,
                              "node id (or its first characters): its node manager's log");
  for (auto* o : {lw, lt, la, lj, ln}) {
    for (auto* other : {lw, lt, la, lj, ln}) {
      if (o != other) o->excludes(other);
    }
  }
  logs->add_flag("--err", logf.err, "a worker's stderr instead of its stdout");
  logs->add_flag("--follow,-f", logf.follow, "keep printing what is written");
  logs->add_option("--tail", logf.tail, "only the last N lines")->check(CLI::Range(1, 100'000));
  logs->add_option("--address", logf.address, "GCS HOST:PORT (default: the one started here)");
  AddTokenOptions(logs, &logf.token, "cluster token");

  // The state API: lumen list|get|summary.
  lumen::cli::StateFlags state;
  auto state_flags = [&](CLI::App* c) {
    c->add_option("--address", state.address, "GCS HOST:PORT (default: the one started here)");
    AddTokenOptions(c, &state.token, "cluster token");
    c->add_flag("--json", state.json, "JSON instead of a table");
  };
  auto* ls = app.add_subcommand(
      "list", "list tasks, actors, nodes, jobs, placement groups, workers or objects");
  ls->add_option("kind", state.kind,
                 "tasks | actors | nodes | jobs | placement-groups | workers | objects")
      ->required()
      ->check(CLI::IsMember(
          {"tasks", "actors", "nodes", "jobs", "placement-groups", "workers", "objects"}));
  ls->add_option(
      "--filter", state.filters,
      "KEY=VALUE, repeatable: tasks by state, name, job, node, actor; actors by "
      "state, class, name, job, node; nodes by state; jobs by status; placement-groups by "
      "state, name; workers by state, job, node; objects by node");
  ls->add_option("--limit", state.limit, "at most this many rows (newest tasks first)")
      ->check(CLI::Range(1, 10'000));
  state_flags(ls);
  auto* get = app.add_subcommand("get", "one task, actor or node, the whole record");
  get->add_option("kind", state.kind, "task | actor | node")
      ->required()
      ->check(CLI::IsMember({"task", "actor", "node"}));
  get->add_option("id", state.id, "its id (actors and nodes: or its first characters)")->required();
  state_flags(get);
  auto* sum = app.add_subcommand("summary", "counts by state, per function or class");
  sum->add_option("kind", state.kind, "tasks | actors | objects")
      ->required()
      ->check(CLI::IsMember({"tasks", "actors", "objects"}));
  sum->add_option("--filter", state.filters, "as for `lumen list tasks`");
  state_flags(sum);

  // `lumen job submit [options] -- CMD ARGS`: CMD ARGS are not ours to parse.
  if (argc > 3 && std::string(argv[1]) == "job" && std::string(argv[2]) == "submit") {
    for (int i = 3; i < argc; ++i) {
      if (std::string(argv[i]) != "--") continue;
      job.command.assign(argv + i + 1, argv + argc);
      argc = i;
      break;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    ScrubToken(argc, argv);
    return app.exit(e);
  }
  ScrubToken(argc, argv);
  if (*sshutdown) return lumen::cli::ServeShutdown(sv);
  if (*srun) return lumen::cli::ServeRun(sv);
  if (*sstart) return lumen::cli::ServeStart(sv);
  if (*sdeploy) return lumen::cli::ServeDeploy(sv);
  if (*sstatus) return lumen::cli::ServeStatus(sv);
  if (*sdelete) return lumen::cli::ServeDelete(sv);
  if (*mtargets) return lumen::cli::MetricsTargets(sv);
  if (*logs) return lumen::cli::Logs(logf);
  if (*jsubmit) return lumen::cli::JobSubmit(job);
  if (*jstatus) return lumen::cli::JobStatus(job);
  if (*jlogs) return lumen::cli::JobLogs(job);
  if (*jstop) return lumen::cli::JobStop(job);
  if (*jlist) return lumen::cli::JobList(job);
  if (*jdelete) return lumen::cli::JobDelete(job);
  if (*ls) return lumen::cli::List(state);
  if (*get) return lumen::cli::Get(state);
  if (*sum) return lumen::cli::Summary(state);
  if (*s) return lumen::cli::Start(start);
  if (*stop) return lumen::cli::Stop();
  if (*st) return lumen::cli::Status(status);
  if (*dr) return lumen::cli::Drain(drain);
  if (*g) return lumen::cli::RunGcsServer(gcs);
  if (*n) return lumen::cli::RunNodeManager(nm);
  if (*db) return lumen::cli::RunDashboard(dash);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "lumen: internal error: " << e.what() << "\n";
    return 1;
  }
}
