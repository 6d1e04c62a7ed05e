// Worker leases; see lease_manager.h.
#include "node/lease_manager.h"

#include <algorithm>
#include <cmath>

#include "common/logging.h"
#include "rpc/rpc.h"

namespace lumen::node {

absl::StatusOr<PlacementRequest> ToPlacement(const proto::LeaseSpec& spec) {
  PlacementRequest p;
  std::map<std::string, double> amounts(spec.resources().begin(), spec.resources().end());
  LUMEN_ASSIGN_OR_RETURN(p.demand, ResourceSet::FromMap(amounts));
  switch (spec.strategy().kind()) {
    case proto::SchedulingStrategy::SPREAD:
      p.policy = "spread";
      break;
    case proto::SchedulingStrategy::NODE_AFFINITY:
      p.policy = "node_affinity";
      p.target = NodeId::FromBinary(spec.strategy().node_id());
      p.soft = spec.strategy().soft();
      if (p.target.IsNil()) {
        return absl::InvalidArgumentError("node affinity needs a node id of " +
                                          std::to_string(NodeId::kSize) + " bytes");
      }
      break;
    default:
      p.policy = "hybrid";
  }
  return p;
}

LeaseManager::LeaseManager(NodeId self, ResourceSet total, ClusterView* view, WorkerPool* pool,
                           CodeResolver* code, std::string host,
                           std::function<void()> on_resources_changed)
    : self_(self),
      total_(std::move(total)),
      view_(view),
      pool_(pool),
      code_(code),
      host_(std::move(host)),
      on_resources_changed_(std::move(on_resources_changed)) {
  gpu_free_.assign(static_cast<size_t>(std::max(0.0, total_.Get("GPU")) + 1e-9), 1.0);
}

ResourceSet LeaseManager::Available() const {
  ResourceSet available = total_;
  available.Subtract(allocated_);
  return available;
}

bool LeaseManager::FitsNow(const ResourceSet& demand) const {
  ResourceSet after = allocated_;
  after.Add(demand);
  return after.IsSubsetOf(total_);
}

void LeaseManager::ResourcesChanged() {
  resources_version_++;
  on_resources_changed_();
}

void LeaseManager::Take(const ResourceSet& r) {
  allocated_.Add(r);
  view_->SetAvailable(self_, Available());
  ResourcesChanged();
}

void LeaseManager::Release(const ResourceSet& r) {
  allocated_.Subtract(r);
  view_->SetAvailable(self_, Available());
  ResourcesChanged();
}

LeaseManager::GpuShares LeaseManager::TakeGpus(double amount) {
  constexpr double kEpsilon = 1e-9;
  GpuShares taken;
  if (amount <= kEpsilon || gpu_free_.empty()) return taken;
  if (amount < 1) {
    // The fullest GPU that still has room: fractions pack together and
    // leave whole GPUs for whole-GPU leases.
    int best = -1;
    for (int i = 0; i < static_cast<int>(gpu_free_.size()); ++i) {
      if (gpu_free_[i] + kEpsilon >= amount && (best < 0 || gpu_free_[i] < gpu_free_[best])) {
        best = i;
      }
    }
    if (best >= 0) taken.emplace_back(best, amount);
  } else {
    auto whole = static_cast<size_t>(std::ceil(amount - kEpsilon));
    for (int i = 0; i < static_cast<int>(gpu_free_.size()) && taken.size() < whole; ++i) {
      if (gpu_free_[i] + kEpsilon >= 1) taken.emplace_back(i, 1.0);
    }
    if (taken.size() < whole) taken.clear();
  }
  if (taken.empty()) {
    // The totals said it fits, the GPUs are cut up (fractions spread over
    // several): granted without GPU ids rather than held back.
    LUMEN_LOG_WARN("no GPU ids free for a lease of GPU={} (fractions spread over the GPUs)",
                   amount);
  }
  for (const auto& [id, share] : taken) gpu_free_[id] -= share;
  return taken;
}

void LeaseManager::ReleaseGpus(const GpuShares& gpus) {
  for (const auto& [id, share] : gpus) {
    if (id < static_cast<int>(gpu_free_.size()))
      gpu_free_[id] = std::min(1.0, gpu_free_[id] + share);
  }
}

void LeaseManager::Fail(Pending* p, absl::StatusCode code, const std::string& message) {
  p->reply->mutable_error()->set_code(static_cast<int>(code));
  p->reply->mutable_error()->set_message(message);
  p->send(absl::OkStatus());
}

void LeaseManager::HandleRequestWorkerLease(const proto::RequestWorkerLeaseRequest& request,
                                            proto::RequestWorkerLeaseReply* reply,
                                            rpc::SendReply send) {
  if (const std::string& id = request.request_id(); !id.empty()) {
    auto [it, fresh] = answers_.try_emplace(id);
    if (!fresh) {  // sent again: the first request's answer, now or when it comes
      if (it->second.answered) {
        *reply = it->second.reply;
        send(it->second.status);
      } else {
        it->second.waiting.emplace_back(reply, std::move(send));
      }
      return;
    }
    send = [this, id, reply, send = std::move(send)](absl::Status status) {
      Remember(id, *reply, status);
      send(std::move(status));
    };
  }
  auto p = std::make_unique<Pending>();
  p->request = request;
  p->reply = reply;
  p->send = std::move(send);
  if (shutting_down_) {
    p->send(absl::UnavailableError("node manager is stopping"));
    return;
  }
  auto placement = ToPlacement(request.spec());
  if (!placement.ok()) {
    Fail(p.get(), placement.status().code(), std::string(placement.status().message()));
    return;
  }
  p->placement = *placement;
  p->demand = placement->demand;
  if (std::string why = WhyGone(request.spec()); !why.empty()) {
    Fail(p.get(), absl::StatusCode::kCancelled, why);
    return;
  }
  if (!Decide(p, /*queued=*/false)) queue_.push_back(std::move(p));
}

void LeaseManager::Remember(const std::string& request_id,
                            const proto::RequestWorkerLeaseReply& reply,
                            const absl::Status& status) {
  auto it = answers_.find(request_id);
  if (it == answers_.end() || it->second.answered) return;
  Answer& a = it->second;
  a.answered = true;
  a.status = status;
  a.reply = reply;
  for (auto& [waiting_reply, waiting_send] : a.waiting) {
    *waiting_reply = reply;
    waiting_send(status);
  }
  a.waiting.clear();
  answered_order_.push_back(request_id);
  while (answered_order_.size() > kRememberedAnswers) {
    answers_.erase(answered_order_.front());
    answered_order_.pop_front();
  }
}

std::string LeaseManager::WhyGone(const proto::LeaseSpec& spec) const {
  JobId job = JobId::FromBinary(spec.job_id());
  if (finished_jobs_.count(job)) return "job " + job.Hex() + " finished";
  if (dead_callers_.count(spec.caller().worker_id())) return "the worker that asked died";
  if (dead_nodes_.count(spec.caller().node_id())) return "the node that asked died";
  if (!spec.placement_group_id().empty() &&
      removed_groups_.Contains(PlacementGroupId::FromBinary(spec.placement_group_id()))) {
    return "placement group " + PlacementGroupId::FromBinary(spec.placement_group_id()).Hex() +
           " was removed";
  }
  return "";
}

void LeaseManager::DropQueued(const std::function<bool(const Pending&)>& doomed,
                              const std::string& why) {
  std::deque<std::unique_ptr<Pending>> keep;
  for (auto& p : queue_) {
    if (doomed(*p)) {
      Fail(p.get(), absl::StatusCode::kCancelled, why);
    } else {
      keep.push_back(std::move(p));
    }
  }
  queue_.swap(keep);
}

bool LeaseManager::Decide(std::unique_ptr<Pending>& p, bool queued) {
  Placement where = scheduler_.Place(*view_, self_, p->placement);
  const std::string& fn = p->request.spec().function_name();
  if (!where.feasible) {
    // A placement group's resources appear once it is created: wait.
    if (UsesGroup(p->demand)) return false;
    Fail(p.get(), absl::StatusCode::kFailedPrecondition,
         "cannot schedule " + (fn.empty() ? std::string("task") : fn) + ": " + where.error);
    return true;
  }
  if (where.node != self_) {
    const NodeView* target = view_->Find(where.node);
    if (p->request.grant_or_reject() || target == nullptr) {
      p->reply->set_rejected(true);
      p->send(absl::OkStatus());
      return true;
    }
    // Count the spilled demand against the target until its next report, so
    // one update does not send the whole queue to the same node.
    ResourceSet left = target->resources.available;
    left.Subtract(p->demand);
    view_->SetAvailable(where.node, left);
    std::string host;
    int port = 0;
    (void)rpc::SplitHostPort(target->address, &host, &port);
    p->reply->mutable_spillback()->set_host(host);
    p->reply->mutable_spillback()->set_port(port);
    p->reply->mutable_spillback()->set_node_id(where.node.Binary());
    stats_.leases_spilled++;
    p->send(absl::OkStatus());
    return true;
  }
  if (FitsNow(p->demand)) {
    Grant(std::move(p));
    return true;
  }
  if (p->request.grant_or_reject()) {
    p->reply->set_rejected(true);
    p->send(absl::OkStatus());
    return true;
  }
  return false;
}

void LeaseManager::Grant(std::unique_ptr<Pending> p) {
  Take(p->demand);
  if (auto gpu = p->request.spec().resources().find("GPU");
      gpu != p->request.spec().resources().end()) {
    p->gpus = TakeGpus(gpu->second);
  }
  JobId job = JobId::FromBinary(p->request.spec().job_id());
  std::shared_ptr<Pending> shared(std::move(p));
  // The job or the caller may go while the code is fetched or a worker starts.
  auto abandon = [this, shared](absl::Status why) {
    Release(shared->demand);
    ReleaseGpus(shared->gpus);
    Fail(shared.get(), why.code(), std::string(why.message()));
    DispatchQueue();
  };
  code_->Resolve(job, [this, shared, job, abandon](absl::StatusOr<std::vector<std::string>> paths) {
    if (std::string why = WhyGone(shared->request.spec()); !why.empty()) {
      abandon(absl::CancelledError(why));
      return;
    }
    if (!paths.ok()) {
      abandon(paths.status());
      return;
    }
    pool_->PopWorker(job, *paths, [this, shared, job, abandon](absl::StatusOr<Worker*> worker) {
      if (!worker.ok()) {
        abandon(worker.status());
        return;
      }
      if (std::string why = WhyGone(shared->request.spec()); !why.empty()) {
        pool_->KillWorker(*worker, why);
        abandon(absl::CancelledError(why));
        return;
      }
      Lease lease;
      lease.id = LeaseId::FromRandom();
      lease.worker = *worker;
      lease.job = job;
      lease.held = shared->demand;
      lease.gpus = shared->gpus;
      for (const auto& gpu : lease.gpus) shared->reply->add_gpu_ids(gpu.first);
      const proto::LeaseSpec& spec = shared->request.spec();
      lease.caller_worker_id = spec.caller().worker_id();
      lease.caller_node_id = spec.caller().node_id();
      if (!spec.actor_id().empty()) {
        (*worker)->actor = ActorId::FromBinary(spec.actor_id());
        (*worker)->detached = spec.detached();
        lease.detached_actor = spec.detached();
      }
      proto::Address* addr = shared->reply->mutable_worker();
      addr->set_host(host_);
      addr->set_port((*worker)->port);
      addr->set_node_id(self_.Binary());
      addr->set_worker_id((*worker)->id.Binary());
      shared->reply->set_lease_id(lease.id.Binary());
      leases_[lease.id] = lease;
      stats_.leases_granted++;
      shared->send(absl::OkStatus());
    });
  });
}

void LeaseManager::DispatchQueue() {
  if (shutting_down_) return;
  std::deque<std::unique_ptr<Pending>> waiting;
  waiting.swap(queue_);
  for (auto& p : waiting) {
    if (!Decide(p, /*queued=*/true)) queue_.push_back(std::move(p));
  }
}

void LeaseManager::HandleReturnWorker(const proto::ReturnWorkerRequest& request,
                                      proto::ReturnWorkerReply* reply, rpc::SendReply send) {
  stats_.tasks_executed += request.tasks_executed();
  auto it = leases_.find(LeaseId::FromBinary(request.lease_id()));
  if (it != leases_.end()) {
    EndLease(it, request.worker_failed(), "its holder saw it fail");
  }
  send(absl::OkStatus());
  DispatchQueue();
}

void LeaseManager::EndLease(std::map<LeaseId, Lease>::iterator it, bool kill_worker,
                            const std::string& why) {
  Lease lease = it->second;
  leases_.erase(it);
  ResourceSet still_held = lease.held;
  still_held.Subtract(lease.lent);
  Release(still_held);
  ReleaseGpus(lease.gpus);
  if (lease.worker == nullptr) return;
  if (kill_worker) {
    pool_->KillWorker(lease.worker, why);
  } else {
    pool_->PushWorker(lease.worker);
  }
}

void LeaseManager::HandleWorkerBlocked(const proto::WorkerBlockedRequest& request,
                                       proto::WorkerBlockedReply* reply, rpc::SendReply send) {
  WorkerId worker = WorkerId::FromBinary(request.worker_id());
  for (auto& [id, lease] : leases_) {
    if (lease.worker == nullptr || lease.worker->id != worker) continue;
    // CPUs are lent while any thread of the worker waits, taken back
    // when the last one resumes.
    if (request.blocked() && lease.blocked++ == 0) {
      lease.lent.Set("CPU", lease.held.Get("CPU"));
      Release(lease.lent);
    } else if (!request.blocked() && lease.blocked > 0 && --lease.blocked == 0) {
      Take(lease.lent);
      lease.lent = ResourceSet();
    }
    break;
  }
  send(absl::OkStatus());
  DispatchQueue();
}

void LeaseManager::OnWorkerExit(const Worker* worker, const std::string& how) {
  std::string id = worker->id.Binary();
  dead_callers_.insert(id);
  DropQueued([&](const Pending& p) { return p.request.spec().caller().worker_id() == id; },
             "the worker that asked died");
  std::vector<LeaseId> ended, held_by_it;
  for (auto& [id, lease] : leases_) {
    if (lease.worker == worker) ended.push_back(id);
    if (lease.caller_worker_id == worker->id.Binary()) held_by_it.push_back(id);
  }
  for (const auto& id : ended) {
    auto it = leases_.find(id);
    it->second.worker = nullptr;  // the pool erases it
    EndLease(it, false, "");
  }
  for (const auto& id : held_by_it) {
    auto it = leases_.find(id);
    if (it != leases_.end()) EndLease(it, true, "the worker that leased it died");
  }
  DispatchQueue();
}

void LeaseManager::OnNodeDead(const NodeId& node) {
  std::string id = node.Binary();
  dead_nodes_.insert(id);
  DropQueued([&](const Pending& p) { return p.request.spec().caller().node_id() == id; },
             "the node that asked died");
  std::vector<LeaseId> held_from_there;
  for (auto& [lease_id, lease] : leases_) {
    if (lease.caller_node_id == id) held_from_there.push_back(lease_id);
  }
  for (const auto& lease_id : held_from_there) {
    EndLease(leases_.find(lease_id), true, "the node that leased it died");
  }
  DispatchQueue();
}

void LeaseManager::KillWorker(const WorkerId& worker, const std::string& why) {
  for (auto it = leases_.begin(); it != leases_.end(); ++it) {
    if (it->second.worker != nullptr && it->second.worker->id == worker) {
      EndLease(it, true, why);
      DispatchQueue();
      return;
    }
  }
  if (Worker* w = pool_->Find(worker)) pool_->KillWorker(w, why);
}

bool LeaseManager::PrepareBundles(const PlacementGroupId& group,
                                  const std::vector<std::pair<int, ResourceSet>>& bundles) {
  if (removed_groups_.Contains(group)) return false;
  std::map<int, Bundle>& held = groups_[group];
  ResourceSet sum;
  std::vector<std::pair<int, ResourceSet>> fresh;
  for (const auto& [index, r] : bundles) {
    if (held.count(index)) continue;  // prepared already (a retry)
    sum.Add(r);
    fresh.emplace_back(index, r);
  }
  if (!fresh.empty() && !FitsNow(sum)) {
    if (held.empty()) groups_.erase(group);
    return false;
  }
  if (!fresh.empty()) Take(sum);
  for (auto& [index, r] : fresh) held[index] = Bundle{std::move(r), false};
  return true;
}

void LeaseManager::CommitBundles(const PlacementGroupId& group) {
  auto it = groups_.find(group);
  if (it == groups_.end()) return;
  bool changed = false;
  for (auto& [index, b] : it->second) {
    if (b.committed) continue;
    b.committed = true;
    total_.Add(BundleResources(b.resources, group, index));
    changed = true;
  }
  if (!changed) return;
  ResourcesTotalChanged();
  DispatchQueue();
}

void LeaseManager::ReturnBundles(const PlacementGroupId& group, const std::vector<int>& indices) {
  auto it = groups_.find(group);
  if (it == groups_.end()) return;
  std::map<int, Bundle>& held = it->second;
  std::vector<int> which = indices;
  if (which.empty()) {
    for (const auto& [index, b] : held) which.push_back(index);
  }
  std::vector<LeaseId> using_them;
  for (const auto& [id, lease] : leases_) {
    for (int index : which) {
      auto b = held.find(index);
      if (b == held.end() || !b->second.committed) continue;
      // A lease on "any bundle" may sit on any of them: end it only when
      // every bundle of the group here goes.
      if (UsesBundle(lease.held, group, index) ||
          (which.size() == held.size() && UsesGroup(lease.held, group))) {
        using_them.push_back(id);
        break;
      }
    }
  }
  for (const auto& id : using_them) {
    auto lease = leases_.find(id);
    if (lease != leases_.end()) EndLease(lease, true, "its placement group bundle was returned");
  }
  for (int index : which) {
    auto b = held.find(index);
    if (b == held.end()) continue;
    if (b->second.committed) total_.Subtract(BundleResources(b->second.resources, group, index));
    Release(b->second.resources);
    held.erase(b);
  }
  if (held.empty()) groups_.erase(it);
  ResourcesTotalChanged();
  DispatchQueue();
}

void LeaseManager::OnGroupRemoved(const PlacementGroupId& group) {
  if (!removed_groups_.Insert(group)) return;
  ReturnBundles(group, {});
  std::string gid = group.Binary();
  DropQueued([&](const Pending& p) { return p.request.spec().placement_group_id() == gid; },
             "placement group " + group.Hex() + " was removed");
}

void LeaseManager::ResourcesTotalChanged() {
  NodeView v = *view_->Find(self_);
  v.resources.total = total_;
  v.resources.available = Available();
  view_->Upsert(v);
  ResourcesChanged();
}

void LeaseManager::OnJobFinished(const JobId& job) {
  if (!finished_jobs_.insert(job).second) return;
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second.job == job && !it->second.detached_actor) {
      auto next = std::next(it);
      it->second.worker = nullptr;  // the pool kills the job's workers
      EndLease(it, false, "");
      it = next;
    } else {
      ++it;
    }
  }
  DropQueued([&](const Pending& p) { return JobId::FromBinary(p.request.spec().job_id()) == job; },
             "job " + job.Hex() + " finished");
  DispatchQueue();
}

void LeaseManager::Shutdown() {
  shutting_down_ = true;
  for (auto& p : queue_) p->send(absl::UnavailableError("node manager is stopping"));
  queue_.clear();
  leases_.clear();
}

}  // namespace lumen::node
