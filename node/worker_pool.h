// WorkerPool: the node's worker processes. Workers belong to one job, are
// started on demand with that job's code package, register back over RPC,
// and are reused across leases. The pool reaps exited workers, stops idle
// ones after a timeout and all of a job's workers when the job ends.
// Runs on the node manager loop.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/process.h"
#include "lumen/id.h"
#include "proto/node.pb.h"
#include "rpc/rpc.h"

namespace lumen::node {

struct WorkerPoolConfig {
  std::string worker_path;  // the lumen_worker executable
  std::string host;         // workers listen here
  std::string node_manager_address;
  std::string gcs_address;
  std::string token;
  NodeId node_id;
  std::string store_prefix;
  std::string log_dir;
  int max_starting = 4;                  // workers starting at once
  int64_t register_timeout_ms = 60'000;  // to start and register
  int64_t idle_timeout_ms = 60'000;      // idle workers beyond soft_limit stop after this
  int soft_limit = 4;                    // idle workers kept regardless of the timeout
  int max_start_failures = 3;            // in a row, per job, before leases fail
};

struct Worker {
  WorkerId id;
  JobId job;
  std::unique_ptr<Process> process;
  std::string log_prefix;
  int port = 0;
  bool registered = false;
  bool leased = false;
  int64_t started_ms = 0;
  int64_t idle_since_ms = 0;
  ActorId actor;          // hosts this actor for life (never back in the pool)
  bool detached = false;  // that actor outlives its job
  pid_t pid() const { return process ? process->pid() : -1; }
};

class WorkerPool {
 public:
  using PopCallback = std::function<void(absl::StatusOr<Worker*>)>;

  WorkerPool(WorkerPoolConfig config, ProcessLauncher* launcher, Clock* clock)
      : config_(std::move(config)), launcher_(launcher), clock_(clock) {}
  ~WorkerPool();

  // Hands an idle worker of `job` to `callback`, starting one (with the job's
  // code files) when none is idle. The callback may run before this returns.
  void PopWorker(const JobId& job, const std::vector<std::string>& code_paths,
                 PopCallback callback);
  // Takes a worker back after its lease.
  void PushWorker(Worker* worker);
  // Stops a worker (it failed, or its lease holder died): SIGKILL, or
  // with `grace_ms` > 0 SIGTERM first (it sends what it has not reported
  // yet, task events above all, and exits) and SIGKILL once that passed.
  void KillWorker(Worker* worker, const std::string& why, int64_t grace_ms = 0);
  // Stops the job's workers, except those hosting detached actors.
  void KillJobWorkers(const JobId& job);

  void HandleRegisterWorker(const proto::RegisterWorkerRequest& request,
                            proto::RegisterWorkerReply* reply, rpc::SendReply send);

  // Timer work: reaps exited workers (calling `on_exit` for each), times out
  // registrations, stops surplus idle workers.
  void Tick(const std::function<void(Worker*, const std::string&)>& on_exit);

  Worker* Find(const WorkerId& id);
  size_t NumWorkers() const { return workers_.size(); }
  // Every worker, for the state API.
  std::vector<proto::WorkerRecord> Describe() const;
  // Kills every worker and reaps them.
  void Shutdown();

 private:
  struct JobState {
    std::deque<PopCallback> waiting;
    std::vector<std::string> code_paths;
    int starting = 0;
    int failures_in_a_row = 0;
    std::string last_failure;
  };

  void StartWorkers(const JobId& job);
  void StartWaitingJobs();
  absl::Status StartOne(const JobId& job, JobState* state);
  void ServeWaiters(const JobId& job);
  void FailWaiters(const JobId& job, const absl::Status& status);
  void OnStartFailed(Worker* w, const std::string& why);
  void Erase(Worker* w);
  int TotalStarting() const;

  WorkerPoolConfig config_;
  ProcessLauncher* launcher_;
  Clock* clock_;
  std::map<WorkerId, std::unique_ptr<Worker>> workers_;
  std::map<JobId, std::deque<Worker*>> idle_;
  std::map<JobId, JobState> jobs_;
  struct Dying {
    std::unique_ptr<Process> process;
    int64_t kill_at_ms = 0;  // SIGKILL then, unless gone (0: sent already)
  };
  std::vector<Dying> dying_;  // stopped, not yet reaped
};

}  // namespace lumen::node
