// Leasing workers and pushing tasks to them; see task_submitter.h.
#include "worker/task_submitter.h"

#include "common/logging.h"
#include "rpc/rpc.h"

namespace lumen::worker {
namespace {

// A pushed task may run for as long as it likes.
constexpr int64_t kPushTimeoutMs = 30LL * 24 * 3600 * 1000;
// A queued lease request waits at the node manager until resources free up.
constexpr int64_t kLeaseTimeoutMs = 24LL * 3600 * 1000;

std::string AddressOf(const proto::Address& a) { return rpc::JoinHostPort(a.host(), a.port()); }

}  // namespace

std::string SchedulingKey(const proto::TaskSpec& spec) {
  std::map<std::string, double> sorted(spec.resources().begin(), spec.resources().end());
  std::string key;
  for (const auto& [name, amount] : sorted) key += name + "=" + std::to_string(amount) + ";";
  key += "|" + std::to_string(spec.strategy().kind()) + "|" + spec.strategy().node_id() +
         (spec.strategy().soft() ? "|soft" : "");
  return key;
}

void TaskSubmitter::Submit(const TaskId& id) {
  resolver_->Resolve(id, [this](const TaskId& ready) { Enqueue(ready); });
}

void TaskSubmitter::Enqueue(const TaskId& id) {
  PendingTask* t = tasks_->Find(id);
  if (t == nullptr) return;
  std::string key = SchedulingKey(t->spec);
  KeyState& k = keys_[key];
  if (k.queue.empty() && k.workers.empty() && k.pending_leases == 0) {
    proto::LeaseSpec& s = k.lease_spec;
    s.set_job_id(t->spec.job_id());
    *s.mutable_resources() = t->spec.resources();
    *s.mutable_strategy() = t->spec.strategy();
    s.set_function_name(t->spec.function_name());
    s.set_placement_group_id(t->spec.placement_group_id());
    *s.mutable_caller() = self_;
  }
  k.queue.push_back(id);
  Pump(key);
}

void TaskSubmitter::Pump(const std::string& key) {
  auto it = keys_.find(key);
  if (it == keys_.end()) return;
  KeyState& k = it->second;
  for (auto& [lease, w] : k.workers) {
    if (w.busy) continue;
    while (!k.queue.empty() && tasks_->Find(k.queue.front()) == nullptr) k.queue.pop_front();
    if (k.queue.empty()) break;
    Push(key, lease, TakeTaskFor(k, w.node_manager));
  }
  if (k.queue.empty()) {
    std::vector<LeaseId> idle;
    for (auto& [lease, w] : k.workers) {
      if (!w.busy) idle.push_back(lease);
    }
    for (const auto& lease : idle) ReturnLease(k, lease, false);
  }
  while (!shutting_down_ && k.pending_leases < options_.max_pending_leases_per_key &&
         k.pending_leases < static_cast<int>(k.queue.size())) {
    // Ask where the next task without a lease request has most of its data.
    const TaskId& next = k.queue[k.pending_leases];
    k.pending_leases++;
    RequestLease(key, PreferredNodeManager(next, k.lease_spec), false, 0);
  }
  if (k.queue.empty() && k.workers.empty() && k.pending_leases == 0) keys_.erase(it);
}

TaskId TaskSubmitter::TakeTaskFor(KeyState& k, const std::string& node_manager) {
  // Prefer a task whose data is on the worker's node, among the next few.
  constexpr size_t kWindow = 64;
  size_t pick = 0;
  for (size_t i = 0; i < std::min(kWindow, k.queue.size()); ++i) {
    if (PreferredNodeManager(k.queue[i], k.lease_spec) == node_manager) {
      pick = i;
      break;
    }
  }
  TaskId task = k.queue[pick];
  k.queue.erase(k.queue.begin() + static_cast<std::ptrdiff_t>(pick));
  return task;
}

std::string TaskSubmitter::PreferredNodeManager(const TaskId& id,
                                                const proto::LeaseSpec& spec) const {
  const PendingTask* t = tasks_->Find(id);
  if (t == nullptr || spec.strategy().kind() != proto::SchedulingStrategy::DEFAULT) {
    return local_node_manager_;
  }
  std::string best = local_node_manager_;
  int64_t most = 0;
  for (const auto& [node_manager, bytes] : t->arg_bytes) {
    if (bytes > most) {
      best = node_manager;
      most = bytes;
    }
  }
  return best;
}

void TaskSubmitter::RequestLease(const std::string& key, const std::string& node_manager,
                                 bool grant_or_reject, int attempt) {
  proto::RequestWorkerLeaseRequest req;
  *req.mutable_spec() = keys_[key].lease_spec;
  req.set_grant_or_reject(grant_or_reject);
  req.set_request_id(LeaseId::FromRandom().Binary());  // retries of this call repeat it
  node_managers_->Get(node_manager)
      ->RequestWorkerLease(
          req,
          [this, key, node_manager, grant_or_reject, attempt](
              absl::Status s, proto::RequestWorkerLeaseReply reply) {
            OnLeaseReply(key, node_manager, grant_or_reject, attempt, s, reply);
          },
          {.timeout_ms = kLeaseTimeoutMs,
           .retry_for_ms = grant_or_reject ? 0 : options_.node_manager_retry_for_ms});
}

void TaskSubmitter::OnLeaseReply(const std::string& key, const std::string& node_manager,
                                 bool spilled, int attempt, const absl::Status& status,
                                 const proto::RequestWorkerLeaseReply& reply) {
  auto it = keys_.find(key);
  if (it == keys_.end()) return;
  KeyState& k = it->second;
  if (!status.ok() && !spilled && node_manager == local_node_manager_) {
    k.pending_leases--;
    absl::Status lost = absl::UnavailableError("cannot reach this node's node manager at " +
                                               node_manager + ": " + status.ToString());
    loop_->PostAfter("submitter.local_lost", std::chrono::milliseconds(options_.local_loss_hold_ms),
                     [this, key, lost] {
                       auto held = keys_.find(key);
                       if (held == keys_.end()) return;
                       FailQueued(held->second, lost);
                       Pump(key);
                     });
    return;
  }
  if (!status.ok() || reply.rejected()) {
    // The spillback target (or the node holding the data) had no room after
    // all, or is gone: ask the local node again, a little later each time.
    int64_t delay = std::min(100, 5 * (attempt + 1));
    loop_->PostAfter("submitter.lease_retry", std::chrono::milliseconds(delay),
                     [this, key, attempt] {
                       if (keys_.count(key))
                         RequestLease(key, local_node_manager_, false, attempt + 1);
                     });
    return;
  }
  if (reply.has_error() && reply.error().code() != 0) {
    k.pending_leases--;
    FailQueued(k, absl::Status(static_cast<absl::StatusCode>(reply.error().code()),
                               reply.error().message()));
    Pump(key);
    return;
  }
  if (reply.has_spillback()) {
    RequestLease(key, AddressOf(reply.spillback()), true, attempt + 1);
    return;
  }
  k.pending_leases--;
  LeaseId lease = LeaseId::FromBinary(reply.lease_id());
  if (shutting_down_) {
    proto::ReturnWorkerRequest req;
    req.set_lease_id(reply.lease_id());
    node_managers_->Get(node_manager)
        ->ReturnWorker(req, [](absl::Status, proto::ReturnWorkerReply) {});
    return;
  }
  k.workers[lease] = LeasedWorker{lease,
                                  reply.worker(),
                                  node_manager,
                                  false,
                                  0,
                                  {reply.gpu_ids().begin(), reply.gpu_ids().end()}};
  Pump(key);
}

void TaskSubmitter::Push(const std::string& key, const LeaseId& lease, const TaskId& task) {
  KeyState& k = keys_[key];
  LeasedWorker& w = k.workers[lease];
  w.busy = true;
  proto::PushTaskRequest req;
  *req.mutable_spec() = tasks_->Find(task)->spec;
  req.set_lease_id(lease.Binary());
  req.mutable_gpu_ids()->Add(w.gpu_ids.begin(), w.gpu_ids.end());
  workers_->Get(AddressOf(w.address))
      ->PushTask(req,
                 [this, key, lease, task](absl::Status s, proto::PushTaskReply reply) {
                   OnPushReply(key, lease, task, s, reply);
                 },
                 {.timeout_ms = kPushTimeoutMs});
}

void TaskSubmitter::OnPushReply(const std::string& key, const LeaseId& lease, const TaskId& task,
                                const absl::Status& status, const proto::PushTaskReply& reply) {
  auto kit = keys_.find(key);
  if (kit == keys_.end()) return;
  KeyState& k = kit->second;
  auto wit = k.workers.find(lease);
  if (wit == k.workers.end()) return;
  LeasedWorker& w = wit->second;
  if (status.ok()) {
    w.busy = false;
    w.tasks_done++;
    tasks_->Complete(task, reply, w.node_manager);
    // Spread places each task: its lease is not reused for the next one.
    if (k.lease_spec.strategy().kind() == proto::SchedulingStrategy::SPREAD) {
      ReturnLease(k, lease, false);
    }
    Pump(key);
    return;
  }
  PendingTask* t = tasks_->Find(task);
  std::string function = t ? t->spec.function_name() : "task";
  absl::Status died =
      absl::UnavailableError("the worker running " + function + " died (node " +
                             NodeId::FromBinary(w.address.node_id()).Short() + ", " +
                             AddressOf(w.address) + "): " + std::string(status.message()));
  workers_->Remove(AddressOf(w.address));
  ReturnLease(k, lease, /*worker_failed=*/true);
  if (tasks_->RetryOrFail(task, died)) k.queue.push_front(task);
  Pump(key);
}

void TaskSubmitter::ReturnLease(KeyState& k, const LeaseId& lease, bool worker_failed) {
  auto it = k.workers.find(lease);
  if (it == k.workers.end()) return;
  proto::ReturnWorkerRequest req;
  req.set_lease_id(lease.Binary());
  req.set_tasks_executed(it->second.tasks_done);
  req.set_worker_failed(worker_failed);
  node_managers_->Get(it->second.node_manager)
      ->ReturnWorker(req, [](absl::Status, proto::ReturnWorkerReply) {},
                     {.timeout_ms = 10'000, .retry_for_ms = 5'000});
  k.workers.erase(it);
}

void TaskSubmitter::FailQueued(KeyState& k, const absl::Status& status) {
  std::deque<TaskId> queue;
  queue.swap(k.queue);
  for (const TaskId& id : queue) tasks_->Fail(id, status);
}

void TaskSubmitter::Shutdown() {
  shutting_down_ = true;
  for (auto& [key, k] : keys_) {
    std::vector<LeaseId> leases;
    for (auto& [lease, w] : k.workers) leases.push_back(lease);
    for (const auto& lease : leases) ReturnLease(k, lease, false);
  }
}

}  // namespace lumen::worker
