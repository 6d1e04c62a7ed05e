// GcsActorManager: the directory and life cycle of actors. It registers an
// actor, picks a node for it by resources (the owner's node counts as
// local), leases a worker from that node's manager (following spillbacks)
// for the actor's whole life, and pushes the creation task to that worker.
// When the worker or its node dies the actor starts again elsewhere, up to
// max_restarts; killed actors and the non-detached actors of a finished job
// die. Every change is published on ACTOR_CHANGES under the actor's id.
// Runs on the GCS loop.
#pragma once

#include <map>
#include <string>
#include <utility>

#include "common/clock.h"
#include "common/event_loop.h"
#include "gcs/node_table.h"
#include "gcs/placement_group_manager.h"
#include "gcs/pubsub.h"
#include "gcs/store.h"
#include "lumen/id.h"
#include "proto/gcs.pb.h"
#include "rpc/client_pool.h"
#include "rpc/core_worker_service.h"
#include "rpc/gcs_service.h"
#include "rpc/node_manager_service.h"
#include "scheduling/policy.h"

namespace lumen::gcs {

class GcsActorManager : public rpc::GcsActorHandler {
 public:
  GcsActorManager(StoreClient* store, Publisher* publisher, GcsNodeTable* nodes,
                  GcsPlacementGroupManager* groups, Clock* clock, EventLoop* loop,
                  const std::string& token, proto::Address self);

  LUMEN_HANDLER_IMPL(CreateActor);
  LUMEN_HANDLER_IMPL(GetActorInfo);
  LUMEN_HANDLER_IMPL(KillActor);
  LUMEN_HANDLER_IMPL(ListActors);
  LUMEN_HANDLER_IMPL(ReportActorWorkerExit);

  // Loads the actors a GCS before this one knew and carries on creating
  // those that were not alive yet.
  absl::Status Restore();
  void OnNodeDead(const NodeId& node);
  // Moves the node's actors elsewhere: each one's worker finishes the calls
  // it has (taking no more), then the actor starts on another node; its
  // callers send what waits meanwhile to the new one.
  void OnNodeDraining(const NodeId& node);
  void OnJobFinished(const JobId& job);
  // Kills the group's actors; returns them (now dead).
  std::vector<proto::ActorInfo> OnPlacementGroupRemoved(const PlacementGroupId& group);
  // Stops retrying schedules and drops clients (the GCS is stopping).
  void Shutdown();

 private:
  struct Actor {
    proto::ActorInfo info;
    WorkerId worker;           // the worker hosting (or creating) it
    NodeId node;               // that worker's node
    std::string node_manager;  // and its node manager
    uint64_t attempt = 0;      // callbacks of an earlier attempt are ignored
    int64_t alive_at_ms = 0;   // when it last became alive
    int quick_deaths = 0;      // deaths in a row within kQuickDeathMs of becoming alive
  };
  // An actor that keeps dying soon after it starts (a crash loop) is
  // restarted after a growing delay, so it cannot take a node down with
  // thousands of worker processes.
  static constexpr int64_t kQuickDeathMs = 10'000;
  static constexpr int64_t kMaxRestartDelayMs = 10'000;

  void Schedule(const ActorId& id);
  // What the actor asks of a node: its resources, renamed into its
  // placement group's bundle when it has one.
  ResourceSet Demand(const Actor& a) const;
  void RequestLease(const ActorId& id, uint64_t attempt, const std::string& node_manager,
                    bool grant_or_reject, int hops);
  void PushCreation(const ActorId& id, uint64_t attempt,
                    const proto::RequestWorkerLeaseReply& lease, const std::string& node_manager);
  void RetryLater(const ActorId& id, uint64_t attempt);
  // The worker hosting the actor is gone: restart it, or it dies.
  void OnWorkerGone(Actor& a, const std::string& cause);
  void MarkDead(Actor& a, const std::string& cause, bool kill_worker);
  void KillWorker(const Actor& a, const std::string& why);
  void Changed(const Actor& a);
  Actor* Find(const ActorId& id);
  std::string Describe(const Actor& a) const;

  StoreClient* store_;
  Publisher* publisher_;
  GcsNodeTable* nodes_;
  GcsPlacementGroupManager* groups_;
  Clock* clock_;
  EventLoop* loop_;
  proto::Address self_;
  rpc::ClientPool<rpc::NodeManagerClient> node_clients_;
  rpc::ClientPool<rpc::CoreWorkerClient> worker_clients_;
  Scheduler scheduler_;
  std::map<ActorId, Actor> actors_;
  std::map<std::pair<std::string, std::string>, ActorId> names_;  // (namespace, name)
  bool shutting_down_ = false;
};

}  // namespace lumen::gcs
