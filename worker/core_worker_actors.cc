// CoreWorker's actor methods: creating, calling, finding and killing actors.
#include "common/ids.h"
#include "rpc/rpc.h"
#include "scheduling/resources.h"
#include "worker/core_worker.h"

namespace lumen::worker {

ActorId CoreWorker::CreateActor(const internal::ActorCreateOptions& o,
                                std::vector<internal::TaskArg> args) {
  ApiCall call(this);
  if (call.stopped()) return ActorId();
  ActorId actor = ActorIdFor(options_.job_id, CurrentTask(), NextActorIndex());
  absl::Status bad = CheckCallable(o.factory_name);
  if (bad.ok() && (o.max_concurrency < 1 || o.max_task_retries < -1 || o.max_restarts < -1)) {
    bad = absl::InvalidArgumentError(
        "actor options: max_concurrency must be >= 1, "
        "max_restarts and max_task_retries >= -1");
  }
  proto::TaskSpec spec;
  if (bad.ok()) {
    internal::TaskOptions task;
    task.function_name = o.factory_name;
    task.signature = o.signature;
    task.resources = o.resources;
    task.placement_group = o.placement_group;
    task.bundle_index = o.bundle_index;
    task.strategy = o.strategy;
    task.max_retries = 0;
    std::vector<ObjectId> no_refs;
    auto built = BuildSpec(proto::ACTOR_CREATION_TASK, ActorCreationTaskId(actor), task,
                           std::move(args), &no_refs);
    if (built.ok()) {
      spec = std::move(*built);
    } else {
      bad = built.status();
    }
  }
  if (!bad.ok()) {
    std::string cause(bad.message());
    loop_.Post("core_worker.actor_failed",
               [this, actor, cause] { actor_submitter_->MarkDead(actor, cause); });
    return actor;
  }
  spec.set_actor_id(actor.Binary());
  spec.set_num_returns(0);
  proto::ActorOptions* ao = spec.mutable_actor_options();
  ao->set_name(o.name);
  ao->set_ns(o.ns);
  ao->set_detached(o.detached);
  ao->set_max_restarts(o.max_restarts);
  ao->set_max_task_retries(o.max_task_retries);
  ao->set_max_concurrency(o.max_concurrency);
  ao->set_class_name(o.class_type);
  loop_.Post("core_worker.create_actor",
             [this, spec = std::move(spec)] { actor_submitter_->Create(spec); });
  return actor;
}

ObjectId CoreWorker::SubmitActorTask(const ActorId& actor, const internal::TaskOptions& options,
                                     std::vector<internal::TaskArg> args) {
  ApiCall call(this);
  if (call.stopped()) return ObjectId();
  TaskId task = ActorTaskId(actor, CurrentTask(), NextSubmitIndex());
  return BuildAndSubmit(proto::ACTOR_TASK, task, actor, options, std::move(args));
}

absl::StatusOr<ActorId> CoreWorker::GetNamedActor(const std::string& name, const std::string& ns,
                                                  const std::string& class_type) {
  ApiCall call(this);
  if (call.stopped()) return absl::CancelledError("lumen is shutting down");
  proto::GetActorInfoRequest req;
  req.set_name(name);
  req.set_ns(ns);
  auto found = rpc::CallSync<proto::GetActorInfoReply>([&](auto cb) {
    gcs_->GetActorInfo(req, cb, {.timeout_ms = 10'000, .retry_for_ms = 10'000});
  });
  if (!found.ok()) return found.status();
  const proto::ActorInfo& info = found->actor();
  if (info.class_name() != class_type) {
    return absl::InvalidArgumentError("actor '" + name + "' is a " +
                                      internal::Demangle(info.class_name().c_str()) + ", not a " +
                                      internal::Demangle(class_type.c_str()));
  }
  loop_.Post("core_worker.named_actor", [this, info] { actor_submitter_->OnActorChange(info); });
  return ActorId::FromBinary(info.actor_id());
}

absl::Status CoreWorker::KillActor(const ActorId& actor, bool no_restart) {
  ApiCall call(this);
  if (call.stopped()) return absl::CancelledError("lumen is shutting down");
  proto::KillActorRequest req;
  req.set_actor_id(actor.Binary());
  req.set_no_restart(no_restart);
  auto killed = rpc::CallSync<proto::KillActorReply>(
      [&](auto cb) { gcs_->KillActor(req, cb, {.timeout_ms = 10'000, .retry_for_ms = 10'000}); });
  if (!killed.ok()) return killed.status();
  if (killed->actor().state() != proto::ActorInfo::DEAD) return absl::OkStatus();
  // Known here at once, ahead of any later call (the loop keeps order), so
  // a call made after Kill returns fails instead of racing the news.
  loop_.Post("core_worker.actor_killed",
             [this, info = killed->actor()] { actor_submitter_->OnActorChange(info); });
  return absl::OkStatus();
}

absl::Status CoreWorker::WaitActorReady(const ActorId& actor, int64_t timeout_ms) {
  ApiCall call(this);
  if (call.stopped()) return absl::CancelledError("lumen is shutting down");
  return actor_submitter_->WaitReady(actor, timeout_ms);
}

namespace {
internal::ActorStateInfo ToStateInfo(const proto::ActorInfo& a) {
  internal::ActorStateInfo out;
  out.id = ActorId::FromBinary(a.actor_id());
  switch (a.state()) {
    case proto::ActorInfo::PENDING:
      out.state = internal::ActorStateInfo::kPending;
      break;
    case proto::ActorInfo::ALIVE:
      out.state = internal::ActorStateInfo::kAlive;
      break;
    case proto::ActorInfo::RESTARTING:
      out.state = internal::ActorStateInfo::kRestarting;
      break;
    default:
      out.state = internal::ActorStateInfo::kDead;
  }
  out.name = a.name();
  out.ns = a.ns();
  out.death_cause = a.death_cause();
  out.pending_reason = a.pending_reason();
  out.num_restarts = a.num_restarts();
  if (!a.node_id().empty()) out.node = NodeId::FromBinary(a.node_id());
  out.detached = a.detached();
  return out;
}
}  // namespace

void CoreWorker::ListActorsAsync(const std::string& ns, const std::string& name_prefix,
                                 ActorsDone done) {
  proto::ListActorsRequest req;
  req.set_ns(ns);
  req.set_name_prefix(name_prefix);
  gcs_->ListActors(req,
                   [done = std::move(done)](absl::Status s, proto::ListActorsReply reply) {
                     if (!s.ok()) return done(s);
                     std::vector<internal::ActorStateInfo> out;
                     out.reserve(reply.actors_size());
                     for (const auto& a : reply.actors()) out.push_back(ToStateInfo(a));
                     done(std::move(out));
                   },
                   {.timeout_ms = 10'000, .retry_for_ms = 10'000});
}

void CoreWorker::KillActorAsync(const ActorId& actor, bool no_restart, StatusDone done) {
  proto::KillActorRequest req;
  req.set_actor_id(actor.Binary());
  req.set_no_restart(no_restart);
  gcs_->KillActor(req,
                  [this, done = std::move(done)](absl::Status s, proto::KillActorReply reply) {
                    if (s.ok() && reply.actor().state() == proto::ActorInfo::DEAD) {
                      actor_submitter_->OnActorChange(reply.actor());
                    }
                    done(s);
                  },
                  {.timeout_ms = 10'000, .retry_for_ms = 10'000});
}

}  // namespace lumen::worker
