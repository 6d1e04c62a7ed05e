// ActorTaskSubmitter: calls on actors from this process. Each actor has a
// queue of calls in submission order; a call goes out once its arguments are
// resolved and every call before it went. Calls travel in batches (all ready
// calls, up to a cap): one batch in flight for an actor that runs one call at
// a time, so a busy caller sends many calls per RPC and the actor runs them in
// order; a few for actors with max_concurrency > 1. The actor's state comes
// from the GCS (ACTOR_CHANGES): calls wait while it is created or restarted;
// when a batch's worker dies, calls with retries left go again to the
// restarted actor and the others fail with an actor-died error; a dead actor
// fails everything. Runs on the core worker loop, except WaitReady.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/event_loop.h"
#include "gcs/subscriber.h"
#include "proto/worker.pb.h"
#include "rpc/client_pool.h"
#include "rpc/core_worker_service.h"
#include "rpc/gcs_client.h"
#include "worker/dependency_resolver.h"
#include "worker/task_manager.h"

namespace lumen::worker {

class ActorTaskSubmitter {
 public:
  ActorTaskSubmitter(EventLoop* loop, rpc::GcsClient* gcs, DependencyResolver* resolver,
                     TaskManager* tasks, rpc::ClientPool<rpc::CoreWorkerClient>* workers,
                     std::string caller_id);
  ~ActorTaskSubmitter();

  // ---- on the loop ----
  // Registers an actor made here with the GCS.
  void Create(const proto::TaskSpec& creation);
  // Makes an actor known as dead (it could not even be asked for).
  void MarkDead(const ActorId& actor, const std::string& cause);
  // Queues a call already added to the TaskManager.
  void Submit(const TaskId& task);
  void OnActorChange(const proto::ActorInfo& info);
  // Asks the GCS again about every actor in use (after a re-subscription).
  void Resync();

  // ---- any thread ----
  // OK once alive, the death cause once dead, DEADLINE_EXCEEDED on timeout.
  absl::Status WaitReady(const ActorId& actor, int64_t timeout_ms);

 private:
  struct Call {
    TaskId task;
    bool ready = false;               // arguments resolved
    std::optional<int> retries_left;  // from the actor's options when sent; -1: always
  };
  struct Actor {
    proto::ActorInfo info;
    bool known = false;
    std::deque<Call> queue;  // not sent yet, in submission order
    int batches_in_flight = 0;
    // A batch to this incarnation failed: until news of a restart (or a
    // while), "alive" about it is stale and calls wait.
    int failed_incarnation = -1;
    std::chrono::steady_clock::time_point failed_at;
    bool recheck_scheduled = false;
    bool registering = false;  // made here, the GCS may not know it yet
    // Calls lost with a worker and out of retries: they fail once the GCS
    // says what became of the actor, so the error names the real cause
    // (killed, removed group...) rather than only the broken connection;
    // if the actor was moved off a draining node meanwhile they are sent
    // again (a draining worker finishes every call it took before it goes,
    // so these never ran).
    struct LostCall {
      TaskId task;
      std::string cause;
      int incarnation = 0;  // the actor's num_restarts and num_moves when sent
      int moves = 0;
    };
    std::vector<LostCall> lost_calls;
  };

  Actor& Use(const ActorId& id);
  void Lookup(const ActorId& id);
  void Flush(const ActorId& id);
  // `incarnation` and `moves`: the actor's num_restarts and num_moves when
  // the batch was sent.
  void OnReply(const ActorId& id, int incarnation, int moves, std::vector<Call> batch,
               const absl::Status& status, const proto::PushActorTasksReply& reply);
  void FailQueued(Actor& a, const absl::Status& error);
  bool Suspect(const Actor& a, const proto::ActorInfo& info) const;
  void RecheckSoon(const ActorId& id);
  absl::Status Died(const Actor& a, const std::string& cause) const;
  void Announce(const ActorId& id, const proto::ActorInfo& info);
  void EnsureSubscribed();

  EventLoop* loop_;
  rpc::GcsClient* gcs_;
  DependencyResolver* resolver_;
  TaskManager* tasks_;
  rpc::ClientPool<rpc::CoreWorkerClient>* workers_;
  std::string caller_id_;
  std::unique_ptr<gcs::GcsSubscriber> subscriber_;
  std::unordered_map<ActorId, Actor> actors_;

  // For WaitReady: the latest state of each actor in use.
  std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<ActorId, proto::ActorInfo> seen_;
};

}  // namespace lumen::worker
