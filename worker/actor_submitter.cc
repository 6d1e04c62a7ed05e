// Calls on actors; see actor_submitter.h.
#include "worker/actor_submitter.h"

#include "worker/task_executor.h"

#include "common/logging.h"
#include "lumen/serialization.h"
#include "rpc/rpc.h"

namespace lumen::worker {
namespace {

constexpr size_t kMaxBatchCalls = 1000;
constexpr size_t kMaxBatchBytes = 16 << 20;
constexpr int64_t kCallTimeoutMs = 30LL * 24 * 3600 * 1000;
// How long "alive" is doubted after calls to that incarnation failed: the
// node manager and GCS take a moment to learn that a worker died; a failure
// that was not a death clears after this.
constexpr auto kSuspectFor = std::chrono::seconds(10);

std::string AddressOf(const proto::Address& a) { return rpc::JoinHostPort(a.host(), a.port()); }

}  // namespace

ActorTaskSubmitter::ActorTaskSubmitter(EventLoop* loop, rpc::GcsClient* gcs,
                                       DependencyResolver* resolver, TaskManager* tasks,
                                       rpc::ClientPool<rpc::CoreWorkerClient>* workers,
                                       std::string caller_id)
    : loop_(loop),
      gcs_(gcs),
      resolver_(resolver),
      tasks_(tasks),
      workers_(workers),
      caller_id_(std::move(caller_id)) {}

ActorTaskSubmitter::~ActorTaskSubmitter() {
  if (subscriber_) subscriber_->Stop();
}

void ActorTaskSubmitter::EnsureSubscribed() {
  if (subscriber_) return;
  subscriber_ = std::make_unique<gcs::GcsSubscriber>(
      gcs_, loop_, std::vector<proto::Channel>{},
      [this](const proto::PubMessage& m) {
        if (m.channel() == proto::ACTOR_CHANGES) OnActorChange(m.actor());
      },
      [this] { Resync(); }, std::vector<proto::Channel>{proto::ACTOR_CHANGES});
  // A change published before the GCS knew we watch would be lost: read the
  // state once the watch holds.
  subscriber_->OnKeyWatched([this](proto::Channel, const std::string& key) {
    auto it = actors_.find(ActorId::FromBinary(key));
    if (it != actors_.end() && it->second.info.state() != proto::ActorInfo::DEAD) {
      Lookup(it->first);
    }
  });
  subscriber_->Start();
}

ActorTaskSubmitter::Actor& ActorTaskSubmitter::Use(const ActorId& id) {
  auto [it, added] = actors_.try_emplace(id);
  if (added) {
    EnsureSubscribed();
    subscriber_->Watch(proto::ACTOR_CHANGES, id.Binary());
    it->second.info.set_actor_id(id.Binary());
  }
  return it->second;
}

void ActorTaskSubmitter::Create(const proto::TaskSpec& creation) {
  ActorId id = ActorId::FromBinary(creation.actor_id());
  Actor& a = Use(id);
  a.info.set_state(proto::ActorInfo::PENDING);
  a.registering = true;
  a.info.set_class_name(creation.actor_options().class_name());
  a.info.set_name(creation.actor_options().name());
  *a.info.mutable_creation_spec() = creation;
  proto::CreateActorRequest req;
  *req.mutable_spec() = creation;
  gcs_->CreateActor(req,
                    [this, id](absl::Status s, proto::CreateActorReply reply) {
                      actors_[id].registering = false;
                      if (s.ok()) {
                        OnActorChange(reply.actor());
                      } else {
                        MarkDead(id, std::string(s.message()));
                      }
                    },
                    {.timeout_ms = 30'000, .retry_for_ms = 30'000});
}

void ActorTaskSubmitter::MarkDead(const ActorId& id, const std::string& cause) {
  proto::ActorInfo info = Use(id).info;
  info.set_state(proto::ActorInfo::DEAD);
  info.set_death_cause(cause);
  info.set_num_restarts(INT32_MAX);  // no later update overrides it
  OnActorChange(info);
}

void ActorTaskSubmitter::Lookup(const ActorId& id) {
  proto::GetActorInfoRequest req;
  req.set_actor_id(id.Binary());
  gcs_->GetActorInfo(req,
                     [this, id](absl::Status s, proto::GetActorInfoReply reply) {
                       if (s.ok()) {
                         OnActorChange(reply.actor());
                       } else if (absl::IsNotFound(s) && !actors_[id].registering &&
                                  !actors_[id].known) {  // (a creation answered meanwhile)
                         MarkDead(id, "the cluster does not know this actor");
                       }
                     },
                     {.timeout_ms = 10'000, .retry_for_ms = 30'000});
}

void ActorTaskSubmitter::Resync() {
  for (const auto& [id, a] : actors_) {
    if (a.info.state() != proto::ActorInfo::DEAD) Lookup(id);
  }
}

void ActorTaskSubmitter::Submit(const TaskId& task) {
  PendingTask* t = tasks_->Find(task);
  if (t == nullptr) return;
  ActorId id = ActorId::FromBinary(t->spec.actor_id());
  Actor& a = Use(id);
  if (!a.known && !a.registering) Lookup(id);
  if (a.info.state() == proto::ActorInfo::DEAD) {
    tasks_->Fail(task, Died(a, a.info.death_cause()));
    return;
  }
  a.queue.push_back(Call{task});
  resolver_->Resolve(task, [this, id](const TaskId& ready) {
    auto it = actors_.find(id);
    if (it == actors_.end()) return;
    // Usually the call just queued (no object arguments): look from the back.
    for (auto c = it->second.queue.rbegin(); c != it->second.queue.rend(); ++c) {
      if (c->task == ready) {
        c->ready = true;
        break;
      }
    }
    Flush(id);
  });
}

void ActorTaskSubmitter::OnActorChange(const proto::ActorInfo& info) {
  ActorId id = ActorId::FromBinary(info.actor_id());
  Actor& a = Use(id);
  // Updates about an earlier incarnation arrive late sometimes.
  if (a.known && info.num_restarts() < a.info.num_restarts()) return;
  if (a.info.state() == proto::ActorInfo::DEAD && a.known) return;
  a.info = info;
  a.known = true;
  if (Suspect(a, info)) {  // news from before the failure: wait for the restart
    a.info.set_state(proto::ActorInfo::RESTARTING);
    RecheckSoon(id);
    return;
  }
  Announce(id, info);
  std::vector<Actor::LostCall> lost;
  lost.swap(a.lost_calls);
  std::vector<Call> resend;
  for (const auto& l : lost) {
    if (info.state() == proto::ActorInfo::DEAD) {
      tasks_->Fail(l.task, Died(a, info.death_cause()));
    } else if (int restarts = info.num_restarts() - l.incarnation;
               restarts > 0 && restarts <= info.num_moves() - l.moves) {  // only moves since
      resend.push_back(Call{l.task, /*ready=*/true, /*retries_left=*/0});
    } else {
      tasks_->Fail(l.task, Died(a, l.cause));
    }
  }
  a.queue.insert(a.queue.begin(), resend.begin(), resend.end());
  if (info.state() == proto::ActorInfo::DEAD) {
    FailQueued(a, Died(a, info.death_cause()));
  } else if (info.state() == proto::ActorInfo::ALIVE) {
    Flush(id);
  }
}

bool ActorTaskSubmitter::Suspect(const Actor& a, const proto::ActorInfo& info) const {
  return info.state() == proto::ActorInfo::ALIVE && info.num_restarts() <= a.failed_incarnation &&
         std::chrono::steady_clock::now() - a.failed_at < kSuspectFor;
}

void ActorTaskSubmitter::RecheckSoon(const ActorId& id) {
  Actor& a = actors_[id];
  if (a.recheck_scheduled) return;
  a.recheck_scheduled = true;
  loop_->PostAfter("actors.recheck", std::chrono::milliseconds(200), [this, id] {
    actors_[id].recheck_scheduled = false;
    Lookup(id);
  });
}

void ActorTaskSubmitter::Flush(const ActorId& id) {
  Actor& a = actors_[id];
  if (!a.known || a.info.state() != proto::ActorInfo::ALIVE) return;
  const proto::ActorOptions& o = a.info.creation_spec().actor_options();
  int max_batches = o.max_concurrency() > 1 ? 4 : 1;
  while (a.batches_in_flight < max_batches && !a.queue.empty() && a.queue.front().ready) {
    proto::PushActorTasksRequest req;
    req.set_caller_id(caller_id_);
    std::vector<Call> batch;
    size_t bytes = 0;
    while (!a.queue.empty() && a.queue.front().ready && batch.size() < kMaxBatchCalls &&
           bytes < kMaxBatchBytes) {
      Call c = a.queue.front();
      a.queue.pop_front();
      PendingTask* t = tasks_->Find(c.task);
      if (t == nullptr) continue;  // failed meanwhile
      if (!c.retries_left) c.retries_left = o.max_task_retries();
      bytes += t->spec.ByteSizeLong();
      *req.add_specs() = t->spec;
      batch.push_back(c);
    }
    if (batch.empty()) break;
    a.batches_in_flight++;
    int incarnation = a.info.num_restarts();
    int moves = a.info.num_moves();
    workers_->Get(AddressOf(a.info.address()))
        ->PushActorTasks(req,
                         [this, id, incarnation, moves, batch = std::move(batch)](
                             absl::Status s, proto::PushActorTasksReply reply) mutable {
                           OnReply(id, incarnation, moves, std::move(batch), s, reply);
                         },
                         {.timeout_ms = kCallTimeoutMs});
  }
}

void ActorTaskSubmitter::OnReply(const ActorId& id, int incarnation, int moves,
                                 std::vector<Call> batch, const absl::Status& status,
                                 const proto::PushActorTasksReply& reply) {
  Actor& a = actors_[id];
  a.batches_in_flight--;
  std::string node_manager = AddressOf(a.info.node_manager());
  if (status.ok() && reply.results_size() == static_cast<int>(batch.size())) {
    MemoryStore::DeferWakeups batched(tasks_->store());
    for (size_t i = 0; i < batch.size(); ++i) {
      tasks_->Complete(batch[i].task, reply.results(static_cast<int>(i)), node_manager);
    }
    Flush(id);
    return;
  }
  // The worker died (or could not be reached) with these calls in flight.
  workers_->Remove(AddressOf(a.info.address()));
  std::string cause = "it died while running this call (" + std::string(status.message()) + ")";
  std::vector<Call> again;
  // A worker that is moving its actor ran none of these: send them again.
  bool moving = absl::IsAborted(status) && status.message() == kActorMoving;
  for (Call& c : batch) {
    if (moving) {
      again.push_back(c);
    } else if (c.retries_left.value_or(0) != 0) {
      if (*c.retries_left > 0) --*c.retries_left;
      again.push_back(c);
    } else if (a.info.state() == proto::ActorInfo::DEAD) {
      tasks_->Fail(c.task, Died(a, a.info.death_cause()));
    } else {
      a.lost_calls.push_back({c.task, cause + "; max_task_retries is used up", incarnation, moves});
    }
  }
  a.queue.insert(a.queue.begin(), again.begin(), again.end());
  if (incarnation > a.failed_incarnation) {
    a.failed_incarnation = incarnation;
    a.failed_at = std::chrono::steady_clock::now();
  }
  if (a.info.state() == proto::ActorInfo::ALIVE && a.info.num_restarts() == incarnation) {
    // No news of a restart yet: wait for it rather than call a dead worker.
    a.info.set_state(proto::ActorInfo::RESTARTING);
    RecheckSoon(id);
  }
  Flush(id);
}

void ActorTaskSubmitter::FailQueued(Actor& a, const absl::Status& error) {
  std::deque<Call> queue;
  queue.swap(a.queue);
  for (const Call& c : queue) tasks_->Fail(c.task, error);
}

absl::Status ActorTaskSubmitter::Died(const Actor& a, const std::string& cause) const {
  std::string who = "actor " + ActorId::FromBinary(a.info.actor_id()).Short();
  if (!a.info.class_name().empty()) who += " (" + internal::Demangle(a.info.class_name().c_str());
  if (!a.info.name().empty()) who += " '" + a.info.name() + "'";
  if (!a.info.class_name().empty()) who += ")";
  return absl::UnavailableError(who + " is dead: " + cause);
}

void ActorTaskSubmitter::Announce(const ActorId& id, const proto::ActorInfo& info) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    seen_[id] = info;
  }
  cv_.notify_all();
}

absl::Status ActorTaskSubmitter::WaitReady(const ActorId& id, int64_t timeout_ms) {
  loop_->Post("actors.wait_ready", [this, id] {
    Actor& a = Use(id);
    if (!a.known && !a.registering) Lookup(id);
  });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::unique_lock<std::mutex> lock(mu_);
  auto settled = [&] {
    auto it = seen_.find(id);
    return it != seen_.end() && (it->second.state() == proto::ActorInfo::ALIVE ||
                                 it->second.state() == proto::ActorInfo::DEAD);
  };
  if (timeout_ms < 0) {
    cv_.wait(lock, settled);
  } else if (!cv_.wait_until(lock, deadline, settled)) {
    return absl::DeadlineExceededError("actor " + id.Short() + " is not ready after " +
                                       std::to_string(timeout_ms) + " ms");
  }
  const proto::ActorInfo& info = seen_[id];
  if (info.state() == proto::ActorInfo::ALIVE) return absl::OkStatus();
  Actor dead;
  dead.info = info;
  return Died(dead, info.death_cause());
}

}  // namespace lumen::worker
