// Actor life cycle in the GCS; see actor_manager.h.
#include "gcs/actor_manager.h"

#include <algorithm>

#include "common/logging.h"
#include "rpc/rpc.h"

namespace lumen::gcs {
namespace {

constexpr char kActorsTable[] = "actors";
constexpr int kMaxSpillbackHops = 5;
constexpr int64_t kRetryDelayMs = 100;

std::string AddressOf(const proto::Address& a) { return rpc::JoinHostPort(a.host(), a.port()); }

bool CanRestart(const proto::ActorInfo& info) {
  return info.max_restarts() < 0 || info.num_restarts() - info.num_moves() < info.max_restarts();
}

}  // namespace

GcsActorManager::GcsActorManager(StoreClient* store, Publisher* publisher, GcsNodeTable* nodes,
                                 GcsPlacementGroupManager* groups, Clock* clock, EventLoop* loop,
                                 const std::string& token, proto::Address self)
    : store_(store),
      publisher_(publisher),
      nodes_(nodes),
      groups_(groups),
      clock_(clock),
      loop_(loop),
      self_(std::move(self)),
      node_clients_(token, loop),
      worker_clients_(token, loop) {}

std::string GcsActorManager::Describe(const Actor& a) const {
  std::string name = a.info.name().empty() ? "" : " '" + a.info.name() + "'";
  return "actor " + ActorId::FromBinary(a.info.actor_id()).Short() + name;
}

GcsActorManager::Actor* GcsActorManager::Find(const ActorId& id) {
  auto it = actors_.find(id);
  return it == actors_.end() ? nullptr : &it->second;
}

void GcsActorManager::Changed(const Actor& a) {
  (void)store_->Put(kActorsTable, a.info.actor_id(), a.info.SerializeAsString());
  proto::PubMessage m;
  m.set_channel(proto::ACTOR_CHANGES);
  m.set_key(a.info.actor_id());
  *m.mutable_actor() = a.info;
  publisher_->Publish(m);
}

void GcsActorManager::HandleCreateActor(const proto::CreateActorRequest& request,
                                        proto::CreateActorReply* reply, rpc::SendReply send) {
  const proto::TaskSpec& spec = request.spec();
  ActorId id = ActorId::FromBinary(spec.actor_id());
  if (spec.type() != proto::ACTOR_CREATION_TASK || id.IsNil()) {
    send(absl::InvalidArgumentError("not an actor creation task"));
    return;
  }
  if (Actor* existing = Find(id)) {  // the caller sent it again
    *reply->mutable_actor() = existing->info;
    send(absl::OkStatus());
    return;
  }
  const proto::ActorOptions& o = spec.actor_options();
  std::pair<std::string, std::string> key{o.ns(), o.name()};
  if (!o.name().empty() && names_.count(key)) {
    send(absl::AlreadyExistsError("an actor named '" + o.name() + "' already exists" +
                                  (o.ns().empty() ? "" : " in namespace '" + o.ns() + "'") +
                                  ": choose another name, or GetActor it"));
    return;
  }
  Actor& a = actors_[id];
  a.info.set_actor_id(id.Binary());
  a.info.set_job_id(spec.job_id());
  a.info.set_state(proto::ActorInfo::PENDING);
  a.info.set_name(o.name());
  a.info.set_ns(o.ns());
  a.info.set_class_name(o.class_name());
  a.info.set_max_restarts(o.max_restarts());
  a.info.set_detached(o.detached());
  *a.info.mutable_creation_spec() = spec;
  *a.info.mutable_owner() = spec.caller();
  a.info.set_start_time_ms(clock_->WallMs());
  if (!o.name().empty()) names_[key] = id;
  Changed(a);
  *reply->mutable_actor() = a.info;
  send(absl::OkStatus());
  Schedule(id);
}

ResourceSet GcsActorManager::Demand(const Actor& a) const {
  const proto::TaskSpec& spec = a.info.creation_spec();
  std::map<std::string, double> amounts(spec.resources().begin(), spec.resources().end());
  ResourceSet demand = ResourceSet::FromMap(amounts).value_or(ResourceSet());
  if (spec.placement_group_id().empty()) return demand;
  return GroupDemand(demand, PlacementGroupId::FromBinary(spec.placement_group_id()),
                     spec.bundle_index());
}

void GcsActorManager::Schedule(const ActorId& id) {
  Actor* a = Find(id);
  if (a == nullptr || a->info.state() == proto::ActorInfo::DEAD || shutting_down_) return;
  uint64_t attempt = ++a->attempt;
  const proto::TaskSpec& spec = a->info.creation_spec();
  if (!spec.placement_group_id().empty()) {
    PlacementGroupId group = PlacementGroupId::FromBinary(spec.placement_group_id());
    const proto::PlacementGroupInfo* g = groups_->Find(group);
    if (g == nullptr || g->state() == proto::PlacementGroupInfo::REMOVED ||
        g->state() == proto::PlacementGroupInfo::INFEASIBLE) {
      MarkDead(*a, "its placement group " + group.Short() + " is removed or can never exist",
               false);
      return;
    }
    if (spec.bundle_index() >= g->bundles_size()) {
      MarkDead(*a,
               "placement group " + group.Short() + " has no bundle " +
                   std::to_string(spec.bundle_index()),
               false);
      return;
    }
    if (g->state() != proto::PlacementGroupInfo::CREATED) {
      RetryLater(id, attempt);  // wait for the group
      return;
    }
  }
  PlacementRequest request;
  request.demand = Demand(*a);
  if (spec.strategy().kind() == proto::SchedulingStrategy::NODE_AFFINITY) {
    request.policy = "node_affinity";
    request.target = NodeId::FromBinary(spec.strategy().node_id());
    request.soft = spec.strategy().soft();
  } else if (spec.strategy().kind() == proto::SchedulingStrategy::SPREAD) {
    request.policy = "spread";
  }
  ClusterView view = nodes_->View();
  Placement where = scheduler_.Place(view, NodeId::FromBinary(spec.caller().node_id()), request);
  if (!where.feasible) {
    if (UsesGroup(request.demand)) {  // the group's nodes have not reported it yet
      RetryLater(id, attempt);
      return;
    }
    MarkDead(*a, "cannot place it: " + where.error, false);
    return;
  }
  RequestLease(id, attempt, nodes_->NodeManagerAddress(where.node), false, 0);
}

void GcsActorManager::RequestLease(const ActorId& id, uint64_t attempt,
                                   const std::string& node_manager, bool grant_or_reject,
                                   int hops) {
  Actor* a = Find(id);
  if (a == nullptr || a->attempt != attempt) return;
  const proto::TaskSpec& spec = a->info.creation_spec();
  proto::RequestWorkerLeaseRequest req;
  proto::LeaseSpec* lease = req.mutable_spec();
  lease->set_job_id(spec.job_id());
  for (const auto& [name, amount] : Demand(*a).ToMap())
    (*lease->mutable_resources())[name] = amount;
  lease->set_function_name(a->info.class_name());
  *lease->mutable_caller() = self_;
  lease->set_actor_id(spec.actor_id());
  lease->set_placement_group_id(spec.placement_group_id());
  lease->set_detached(a->info.detached());
  if (spec.strategy().kind() == proto::SchedulingStrategy::NODE_AFFINITY) {
    *lease->mutable_strategy() = spec.strategy();
  }
  req.set_grant_or_reject(grant_or_reject);
  req.set_request_id(LeaseId::FromRandom().Binary());
  a->info.set_pending_reason("waiting for " + Demand(*a).ToString() + " on node " + node_manager);
  node_clients_.Get(node_manager)
      ->RequestWorkerLease(
          req,
          [this, id, attempt, node_manager, hops](absl::Status s,
                                                  proto::RequestWorkerLeaseReply reply) {
            Actor* a = Find(id);
            if (a == nullptr || a->attempt != attempt) return;
            if (!s.ok() || reply.rejected()) {
              RetryLater(id, attempt);  // node gone or full after all: place it again
            } else if (reply.has_error() && reply.error().code() != 0) {
              MarkDead(*a, reply.error().message(), false);
            } else if (reply.has_spillback() && hops < kMaxSpillbackHops) {
              RequestLease(id, attempt, AddressOf(reply.spillback()), true, hops + 1);
            } else if (reply.has_spillback()) {
              RetryLater(id, attempt);
            } else {
              PushCreation(id, attempt, reply, node_manager);
            }
          },
          {.timeout_ms = 24LL * 3600 * 1000});
}

void GcsActorManager::RetryLater(const ActorId& id, uint64_t attempt) {
  loop_->PostAfter("actors.retry_schedule", std::chrono::milliseconds(kRetryDelayMs),
                   [this, id, attempt] {
                     Actor* a = Find(id);
                     if (a != nullptr && a->attempt == attempt) Schedule(id);
                   });
}

void GcsActorManager::PushCreation(const ActorId& id, uint64_t attempt,
                                   const proto::RequestWorkerLeaseReply& lease,
                                   const std::string& node_manager) {
  Actor* a = Find(id);
  a->info.set_pending_reason("");
  a->worker = WorkerId::FromBinary(lease.worker().worker_id());
  a->node = NodeId::FromBinary(lease.worker().node_id());
  a->node_manager = node_manager;
  proto::PushTaskRequest req;
  *req.mutable_spec() = a->info.creation_spec();
  req.mutable_spec()->set_restart_count(a->info.num_restarts());
  req.set_lease_id(lease.lease_id());
  *req.mutable_gpu_ids() = lease.gpu_ids();
  proto::Address worker = lease.worker();
  worker_clients_.Get(AddressOf(worker))
      ->PushTask(
          req,
          [this, id, attempt, worker, node_manager](absl::Status s, proto::PushTaskReply reply) {
            Actor* a = Find(id);
            if (a == nullptr || a->attempt != attempt) return;
            if (!s.ok()) {
              worker_clients_.Remove(AddressOf(worker));
              OnWorkerGone(*a,
                           "its worker died while creating it (" + std::string(s.message()) + ")");
              return;
            }
            if (reply.returns_size() > 0 && reply.returns(0).has_error()) {
              MarkDead(*a, "its factory failed: " + reply.returns(0).error().message(), true);
              return;
            }
            a->info.set_state(proto::ActorInfo::ALIVE);
            *a->info.mutable_address() = worker;
            *a->info.mutable_last_worker() = worker;
            a->info.set_pid(reply.pid());
            a->info.set_node_id(worker.node_id());
            std::string host;
            int port = 0;
            (void)rpc::SplitHostPort(node_manager, &host, &port);
            a->info.mutable_node_manager()->set_host(host);
            a->info.mutable_node_manager()->set_port(port);
            a->info.mutable_node_manager()->set_node_id(worker.node_id());
            a->alive_at_ms = clock_->WallMs();
            Changed(*a);
            LUMEN_LOG_INFO("{} alive on node {} (restarts {})", Describe(*a),
                           NodeId::FromBinary(worker.node_id()).Short(), a->info.num_restarts());
          },
          {.timeout_ms = 24LL * 3600 * 1000});
}

void GcsActorManager::OnWorkerGone(Actor& a, const std::string& cause) {
  a.worker = WorkerId();
  a.node = NodeId();
  if (a.info.state() == proto::ActorInfo::DEAD) return;
  if (!CanRestart(a.info)) {
    MarkDead(a, cause + " (max_restarts=" + std::to_string(a.info.max_restarts()) + " used up)",
             false);
    return;
  }
  a.info.set_num_restarts(a.info.num_restarts() + 1);
  a.info.set_state(proto::ActorInfo::RESTARTING);
  a.info.set_death_cause(cause);
  a.info.clear_address();
  Changed(a);
  bool quick = a.alive_at_ms == 0 || clock_->WallMs() - a.alive_at_ms < kQuickDeathMs;
  a.quick_deaths = quick ? a.quick_deaths + 1 : 0;
  a.alive_at_ms = 0;
  // The first restarts come at once; a crash loop waits 0.2 s, 0.4 s, ... 10 s.
  int64_t delay =
      a.quick_deaths <= 2
          ? 0
          : std::min<int64_t>(kMaxRestartDelayMs, int64_t{100} << std::min(a.quick_deaths - 2, 8));
  LUMEN_LOG_INFO("{} restarting ({}{}): {}", Describe(a), a.info.num_restarts(),
                 delay > 0 ? ", in " + std::to_string(delay) + " ms: it keeps dying" : "", cause);
  ActorId id = ActorId::FromBinary(a.info.actor_id());
  if (delay == 0) {
    Schedule(id);
  } else {
    uint64_t attempt = ++a.attempt;
    loop_->PostAfter("actors.restart_later", std::chrono::milliseconds(delay), [this, id, attempt] {
      Actor* a = Find(id);
      if (a != nullptr && a->attempt == attempt) Schedule(id);
    });
  }
}

void GcsActorManager::MarkDead(Actor& a, const std::string& cause, bool kill_worker) {
  if (a.info.state() == proto::ActorInfo::DEAD) return;
  if (kill_worker) KillWorker(a, cause);
  a.attempt++;  // drop callbacks of a creation in progress
  a.worker = WorkerId();
  a.node = NodeId();
  a.info.set_state(proto::ActorInfo::DEAD);
  a.info.set_death_cause(cause);
  a.info.set_end_time_ms(clock_->WallMs());
  a.info.clear_address();
  auto named = names_.find({a.info.ns(), a.info.name()});
  if (named != names_.end() && named->second == ActorId::FromBinary(a.info.actor_id())) {
    names_.erase(named);
  }
  Changed(a);
  LUMEN_LOG_INFO("{} dead: {}", Describe(a), cause);
}

void GcsActorManager::KillWorker(const Actor& a, const std::string& why) {
  if (a.worker.IsNil() || a.node_manager.empty()) return;
  proto::KillWorkerRequest req;
  req.set_worker_id(a.worker.Binary());
  req.set_reason(why);
  node_clients_.Get(a.node_manager)
      ->KillWorker(req, [](absl::Status, proto::KillWorkerReply) {}, {.timeout_ms = 10'000});
}

void GcsActorManager::HandleGetActorInfo(const proto::GetActorInfoRequest& request,
                                         proto::GetActorInfoReply* reply, rpc::SendReply send) {
  ActorId id = ActorId::FromBinary(request.actor_id());
  if (id.IsNil() && !request.name().empty()) {
    auto named = names_.find({request.ns(), request.name()});
    if (named == names_.end()) {
      send(absl::NotFoundError(
          "no live actor named '" + request.name() + "'" +
          (request.ns().empty() ? "" : " in namespace '" + request.ns() + "'")));
      return;
    }
    id = named->second;
  }
  Actor* a = Find(id);
  if (a == nullptr) {
    send(absl::NotFoundError("no actor " + id.Hex()));
    return;
  }
  *reply->mutable_actor() = a->info;
  send(absl::OkStatus());
}

void GcsActorManager::HandleKillActor(const proto::KillActorRequest& request,
                                      proto::KillActorReply* reply, rpc::SendReply send) {
  Actor* a = Find(ActorId::FromBinary(request.actor_id()));
  if (a == nullptr) {
    send(absl::NotFoundError("no actor " + ActorId::FromBinary(request.actor_id()).Hex()));
    return;
  }
  if (request.no_restart()) {
    MarkDead(*a, "killed by lumen::Kill", true);
  } else if (a->info.state() != proto::ActorInfo::DEAD) {
    KillWorker(*a, "killed by lumen::Kill, to restart");
    a->attempt++;
    OnWorkerGone(*a, "killed by lumen::Kill");
  }
  *reply->mutable_actor() = a->info;
  send(absl::OkStatus());
}

void GcsActorManager::HandleListActors(const proto::ListActorsRequest& request,
                                       proto::ListActorsReply* reply, rpc::SendReply send) {
  for (const auto& [id, a] : actors_) {
    if (!request.ns().empty() && a.info.ns() != request.ns()) continue;
    if (!request.name_prefix().empty() &&
        (a.info.name().empty() || a.info.name().rfind(request.name_prefix(), 0) != 0)) {
      continue;
    }
    *reply->add_actors() = a.info;
  }
  send(absl::OkStatus());
}

void GcsActorManager::HandleReportActorWorkerExit(
    const proto::ReportActorWorkerExitRequest& request, proto::ReportActorWorkerExitReply* reply,
    rpc::SendReply send) {
  Actor* a = Find(ActorId::FromBinary(request.actor_id()));
  if (a != nullptr && a->worker == WorkerId::FromBinary(request.worker_id())) {
    a->attempt++;
    OnWorkerGone(*a, "its worker exited (" + request.cause() + ")");
  }
  send(absl::OkStatus());
}

absl::Status GcsActorManager::Restore() {
  LUMEN_ASSIGN_OR_RETURN(auto all, store_->GetAll(kActorsTable));
  std::vector<ActorId> to_schedule;
  for (const auto& [key, value] : all) {
    ActorId id = ActorId::FromBinary(key);
    Actor& a = actors_[id];
    if (!a.info.ParseFromString(value)) return absl::DataLossError("a stored actor does not parse");
    if (a.info.state() == proto::ActorInfo::DEAD) continue;
    if (!a.info.name().empty()) names_[{a.info.ns(), a.info.name()}] = id;
    if (a.info.state() == proto::ActorInfo::ALIVE) {
      a.worker = WorkerId::FromBinary(a.info.address().worker_id());
      a.node = NodeId::FromBinary(a.info.node_id());
      a.node_manager =
          rpc::JoinHostPort(a.info.node_manager().host(), a.info.node_manager().port());
    } else {
      to_schedule.push_back(id);  // its creation was under way
    }
  }
  for (const ActorId& id : to_schedule) Schedule(id);
  if (!all.empty()) LUMEN_LOG_INFO("restored {} actors", actors_.size());
  return absl::OkStatus();
}

void GcsActorManager::OnNodeDead(const NodeId& node) {
  for (auto& [id, a] : actors_) {
    if (a.info.state() == proto::ActorInfo::DEAD || a.worker.IsNil() || a.node != node) continue;
    a.attempt++;
    OnWorkerGone(a, "node " + node.Short() + " died");
  }
}

void GcsActorManager::OnNodeDraining(const NodeId& node) {
  for (auto& [id, a] : actors_) {
    if (a.info.state() != proto::ActorInfo::ALIVE || a.node != node) continue;
    uint64_t attempt = ++a.attempt;
    proto::Address worker = a.info.address();
    a.info.set_state(proto::ActorInfo::RESTARTING);  // callers hold new calls
    a.info.set_num_restarts(a.info.num_restarts() + 1);
    a.info.set_num_moves(a.info.num_moves() + 1);
    a.info.set_death_cause("moving off draining node " + node.Short());
    a.info.clear_address();
    Changed(a);
    LUMEN_LOG_INFO("{} moving off draining node {}", Describe(a), node.Short());
    ActorId actor = id;
    auto moved = [this, actor, attempt](absl::Status s, proto::DrainActorReply) {
      Actor* a = Find(actor);
      if (a == nullptr || a->attempt != attempt) return;
      // The drained worker exits once its last answers are out; kill it
      // only if it has not after a while.
      Actor old;
      old.worker = a->worker;
      old.node_manager = a->node_manager;
      loop_->PostAfter("actors.kill_moved_worker", std::chrono::seconds(5),
                       [this, old] { KillWorker(old, "its actor moved off a draining node"); });
      a->worker = WorkerId();
      a->node = NodeId();
      Schedule(actor);
    };
    worker_clients_.Get(rpc::JoinHostPort(worker.host(), worker.port()))
        ->DrainActor(proto::DrainActorRequest(), moved, {.timeout_ms = 60'000});
  }
}

void GcsActorManager::OnJobFinished(const JobId& job) {
  for (auto& [id, a] : actors_) {
    if (!a.info.detached() && JobId::FromBinary(a.info.job_id()) == job) {
      MarkDead(a, "its job finished", true);
    }
  }
}

std::vector<proto::ActorInfo> GcsActorManager::OnPlacementGroupRemoved(
    const PlacementGroupId& group) {
  std::vector<proto::ActorInfo> killed;
  for (auto& [id, a] : actors_) {
    if (a.info.creation_spec().placement_group_id() == group.Binary() &&
        a.info.state() != proto::ActorInfo::DEAD) {
      MarkDead(a, "its placement group " + group.Short() + " was removed", true);
      killed.push_back(a.info);
    }
  }
  return killed;
}

void GcsActorManager::Shutdown() {
  shutting_down_ = true;
  node_clients_.Clear();
  worker_clients_.Clear();
}

}  // namespace lumen::gcs
