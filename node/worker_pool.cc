// Worker processes; see worker_pool.h.
#include "node/worker_pool.h"

#include <signal.h>

#include <algorithm>

#include "common/logging.h"

namespace lumen::node {
namespace {

// How long a worker stopped because it is no longer needed has to send
// what it has not reported (lumen_worker's SIGTERM path) before SIGKILL.
constexpr int64_t kStopGraceMs = 1'000;

}  // namespace

WorkerPool::~WorkerPool() { Shutdown(); }

void WorkerPool::PopWorker(const JobId& job, const std::vector<std::string>& code_paths,
                           PopCallback callback) {
  auto& idle = idle_[job];
  if (!idle.empty()) {
    Worker* w = idle.back();
    idle.pop_back();
    w->leased = true;
    callback(w);
    return;
  }
  JobState& state = jobs_[job];
  state.code_paths = code_paths;
  if (state.failures_in_a_row >= config_.max_start_failures) {
    callback(absl::FailedPreconditionError(state.last_failure));
    return;
  }
  state.waiting.push_back(std::move(callback));
  StartWorkers(job);
}

void WorkerPool::PushWorker(Worker* w) {
  w->leased = false;
  w->idle_since_ms = clock_->NowMs();
  idle_[w->job].push_back(w);
  ServeWaiters(w->job);
}

int WorkerPool::TotalStarting() const {
  int n = 0;
  for (const auto& [job, s] : jobs_) n += s.starting;
  return n;
}

void WorkerPool::StartWaitingJobs() {
  // A start slot freed up: any job may use it, not only the one that freed it.
  std::vector<JobId> waiting;
  for (const auto& [job, state] : jobs_) {
    if (static_cast<int>(state.waiting.size()) > state.starting) waiting.push_back(job);
  }
  for (const JobId& job : waiting) StartWorkers(job);
}

void WorkerPool::StartWorkers(const JobId& job) {
  JobState& state = jobs_[job];
  while (static_cast<int>(state.waiting.size()) > state.starting &&
         TotalStarting() < config_.max_starting) {
    if (absl::Status s = StartOne(job, &state); !s.ok()) {
      FailWaiters(job, s);
      return;
    }
  }
}

absl::Status WorkerPool::StartOne(const JobId& job, JobState* state) {
  auto w = std::make_unique<Worker>();
  w->id = WorkerId::FromRandom();
  w->job = job;
  w->started_ms = clock_->NowMs();
  w->log_prefix = config_.log_dir + "/worker-" + w->id.Short();
  ProcessSpec spec;
  spec.argv = {config_.worker_path,
               "--node-manager=" + config_.node_manager_address,
               "--gcs=" + config_.gcs_address,
               "--node-id=" + config_.node_id.Hex(),
               "--worker-id=" + w->id.Hex(),
               "--job-id=" + job.Hex(),
               "--host=" + config_.host,
               "--store-prefix=" + config_.store_prefix};
  for (const auto& path : state->code_paths) spec.argv.push_back("--code=" + path);
  spec.env = {{"LUMEN_TOKEN", config_.token}};
  spec.stdout_path = w->log_prefix + ".out";
  spec.stderr_path = w->log_prefix + ".err";
  spec.lifeline = true;
  auto process = launcher_->Launch(spec);
  if (!process.ok()) return process.status();
  w->process = std::move(*process);
  LUMEN_LOG_DEBUG("worker starting worker={} job={} pid={}", w->id.Short(), job.Hex(), w->pid());
  state->starting++;
  workers_[w->id] = std::move(w);
  return absl::OkStatus();
}

void WorkerPool::HandleRegisterWorker(const proto::RegisterWorkerRequest& request,
                                      proto::RegisterWorkerReply* reply, rpc::SendReply send) {
  Worker* w = Find(WorkerId::FromBinary(request.worker_id()));
  if (w == nullptr || w->registered) {
    send(absl::NotFoundError("this node manager did not start that worker"));
    return;
  }
  jobs_[w->job].starting--;
  if (!request.startup_error().empty()) {
    send(absl::OkStatus());
    OnStartFailed(
        w, "a worker for job " + w->job.Hex() + " could not start: " + request.startup_error());
    return;
  }
  w->registered = true;
  w->port = request.port();
  jobs_[w->job].failures_in_a_row = 0;
  send(absl::OkStatus());
  LUMEN_LOG_DEBUG("worker registered worker={} pid={} port={}", w->id.Short(), w->pid(), w->port);
  PushWorker(w);
  StartWaitingJobs();
}

void WorkerPool::OnStartFailed(Worker* w, const std::string& why) {
  JobId job = w->job;
  JobState& state = jobs_[job];
  state.failures_in_a_row++;
  state.last_failure = why + " (worker log: " + w->log_prefix + ".err)";
  LUMEN_LOG_WARN("worker start failed job={} failures_in_a_row={}: {}", job.Hex(),
                 state.failures_in_a_row, why);
  KillWorker(w, why);
  if (state.failures_in_a_row >= config_.max_start_failures) {
    FailWaiters(job, absl::FailedPreconditionError(state.last_failure));
  }
  StartWaitingJobs();
}

void WorkerPool::ServeWaiters(const JobId& job) {
  auto& idle = idle_[job];
  auto& waiting = jobs_[job].waiting;
  while (!idle.empty() && !waiting.empty()) {
    Worker* w = idle.back();
    idle.pop_back();
    w->leased = true;
    PopCallback cb = std::move(waiting.front());
    waiting.pop_front();
    cb(w);
  }
}

void WorkerPool::FailWaiters(const JobId& job, const absl::Status& status) {
  auto waiting = std::move(jobs_[job].waiting);
  jobs_[job].waiting.clear();
  for (auto& cb : waiting) cb(status);
}

void WorkerPool::KillWorker(Worker* w, const std::string& why, int64_t grace_ms) {
  LUMEN_LOG_DEBUG("stopping worker worker={} pid={}: {}", w->id.Short(), w->pid(), why);
  if (w->process) {
    bool gently = grace_ms > 0 && w->registered;
    (void)w->process->Signal(gently ? SIGTERM : SIGKILL);
    if (!w->process->TryReap()) {
      dying_.push_back({std::move(w->process), gently ? clock_->NowMs() + grace_ms : 0});
    }
  }
  Erase(w);
}

void WorkerPool::KillJobWorkers(const JobId& job) {
  std::vector<Worker*> victims;
  for (auto& [id, w] : workers_) {
    if (w->job == job && !w->detached) victims.push_back(w.get());
  }
  for (Worker* w : victims) {
    if (!w->registered) jobs_[job].starting--;
    KillWorker(w, "job finished", kStopGraceMs);
  }
  FailWaiters(job, absl::CancelledError("job " + job.Hex() + " finished"));
  jobs_.erase(job);
  idle_.erase(job);
  StartWaitingJobs();
}

void WorkerPool::Erase(Worker* w) {
  auto& idle = idle_[w->job];
  idle.erase(std::remove(idle.begin(), idle.end(), w), idle.end());
  workers_.erase(w->id);
}

Worker* WorkerPool::Find(const WorkerId& id) {
  auto it = workers_.find(id);
  return it == workers_.end() ? nullptr : it->second.get();
}

void WorkerPool::Tick(const std::function<void(Worker*, const std::string&)>& on_exit) {
  int64_t now = clock_->NowMs();
  for (Dying& d : dying_) {
    if (d.kill_at_ms > 0 && now >= d.kill_at_ms) {
      (void)d.process->Signal(SIGKILL);
      d.kill_at_ms = 0;
    }
  }
  std::erase_if(dying_, [](const Dying& d) { return d.process->TryReap(); });
  // Ids, not pointers: handling one exit may stop (and free) other workers.
  std::vector<WorkerId> exited, slow;
  for (auto& [id, w] : workers_) {
    if (w->process && w->process->TryReap()) {
      exited.push_back(id);
    } else if (!w->registered && now - w->started_ms > config_.register_timeout_ms) {
      slow.push_back(id);
    }
  }
  for (const WorkerId& id : exited) {
    Worker* w = Find(id);
    if (w == nullptr) continue;
    std::string how = w->process->DescribeExit();
    if (!w->registered) {
      jobs_[w->job].starting--;
      OnStartFailed(
          w, "a worker for job " + w->job.Hex() + " exited before registering (" + how + ")");
      continue;
    }
    on_exit(w, how);
    if (Find(id) != nullptr) Erase(w);
  }
  for (const WorkerId& id : slow) {
    Worker* w = Find(id);
    if (w == nullptr) continue;
    jobs_[w->job].starting--;
    OnStartFailed(w, "a worker for job " + w->job.Hex() + " did not register within " +
                         std::to_string(config_.register_timeout_ms) + " ms");
  }
  // Stop idle workers beyond the soft limit once they have idled long enough.
  size_t idle_count = 0;
  for (auto& [job, q] : idle_) idle_count += q.size();
  for (auto& [job, q] : idle_) {
    while (idle_count > static_cast<size_t>(config_.soft_limit) && !q.empty() &&
           now - q.front()->idle_since_ms > config_.idle_timeout_ms) {
      Worker* w = q.front();
      KillWorker(w, "idle", kStopGraceMs);
      idle_count--;
    }
  }
}

void WorkerPool::Shutdown() {
  for (auto& [id, w] : workers_) {
    if (w->process) (void)w->process->Signal(SIGKILL);
  }
  for (auto& [id, w] : workers_) {
    if (w->process) w->process->Terminate(1000);
  }
  for (auto& d : dying_) (void)d.process->Signal(SIGKILL);  // no more grace
  for (auto& d : dying_) d.process->Terminate(1000);
  dying_.clear();
  workers_.clear();
  idle_.clear();
  for (auto& [job, s] : jobs_) {
    for (auto& cb : s.waiting) cb(absl::UnavailableError("node manager is stopping"));
  }
  jobs_.clear();
}

std::vector<proto::WorkerRecord> WorkerPool::Describe() const {
  std::vector<proto::WorkerRecord> out;
  for (const auto& [id, w] : workers_) {
    proto::WorkerRecord r;
    r.set_worker_id(id.Binary());
    r.set_pid(w->pid());
    r.set_job_id(w->job.Binary());
    r.set_state(!w->registered      ? "STARTING"
                : !w->actor.IsNil() ? "ACTOR"
                : w->leased         ? "LEASED"
                                    : "IDLE");
    if (!w->actor.IsNil()) r.set_actor_id(w->actor.Binary());
    r.set_start_time_ms(clock_->WallMs() - (clock_->NowMs() - w->started_ms));
    r.set_log_prefix(w->log_prefix);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace lumen::node
