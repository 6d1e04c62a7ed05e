// GcsPlacementGroupManager: placement groups. A group's bundles are placed
// by its strategy (scheduling/placement_group.h), then reserved on their
// nodes in two phases: prepare on every node (each all or none), then
// commit; if any prepare fails the prepared ones are returned and the group
// waits for room. A group no set of nodes could ever hold is infeasible at
// once. When a node holding bundles dies they are placed again; removing a
// group returns its bundles and kills what runs in them. Runs on the GCS
// loop.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/event_loop.h"
#include "gcs/node_table.h"
#include "gcs/pubsub.h"
#include "gcs/store.h"
#include "lumen/id.h"
#include "rpc/client_pool.h"
#include "rpc/gcs_service.h"
#include "rpc/node_manager_service.h"
#include "scheduling/placement_group.h"

namespace lumen::gcs {

class GcsPlacementGroupManager : public rpc::GcsPlacementGroupHandler {
 public:
  GcsPlacementGroupManager(StoreClient* store, Publisher* publisher, GcsNodeTable* nodes,
                           Clock* clock, EventLoop* loop, const std::string& token);

  LUMEN_HANDLER_IMPL(CreatePlacementGroup);
  LUMEN_HANDLER_IMPL(RemovePlacementGroup);
  LUMEN_HANDLER_IMPL(GetPlacementGroup);
  LUMEN_HANDLER_IMPL(WaitPlacementGroup);
  LUMEN_HANDLER_IMPL(ListPlacementGroups);

  // Loads the groups a GCS before this one knew; those not created yet are
  // placed again.
  absl::Status Restore();
  void OnNodeDead(const NodeId& node);
  void OnJobFinished(const JobId& job);
  // Retries groups waiting for room; ends waits that timed out.
  void Tick();
  void Shutdown();

  // nullptr for an unknown or removed group.
  const proto::PlacementGroupInfo* Find(const PlacementGroupId& id) const;
  // Called with each removed group; returns the actors it killed (the
  // actor manager kills the group's actors).
  using RemovalListener = std::function<std::vector<proto::ActorInfo>(const PlacementGroupId&)>;
  void AddRemovalListener(RemovalListener listener) {
    removal_listeners_.push_back(std::move(listener));
  }

 private:
  struct Waiter {
    rpc::SendReply send;
    int64_t deadline_ms;
  };
  struct Group {
    proto::PlacementGroupInfo info;
    uint64_t attempt = 0;  // replies of an earlier reservation are ignored
    bool reserving = false;
    std::vector<NodeId> placing;  // the node of each bundle being reserved
    std::vector<Waiter> waiters;
    // Creation calls, answered when the first try to place the group ends.
    std::vector<std::pair<proto::CreatePlacementGroupReply*, rpc::SendReply>> creators;
  };
  // Resources a node took for a group (or gave back) that its reports do
  // not show yet: counted until a report carries the node's resources
  // version from after the change.
  struct Adjustment {
    NodeId node;
    PlacementGroupId group;
    ResourceSet resources;
    bool credit = false;   // given back (else taken)
    uint64_t version = 0;  // the node's once it made the change; 0: not yet
    int64_t until_ms = 0;  // forgotten then in any case
  };

  void TrySchedule(const PlacementGroupId& id);
  void Prepare(const PlacementGroupId& id, uint64_t attempt);
  using BundlesByNode = std::map<NodeId, std::vector<int>>;
  void Commit(const PlacementGroupId& id, uint64_t attempt, BundlesByNode round);
  // Ends a round of reservation: records where the bundles are, or (with
  // `failed`, or a node gone meanwhile) gives them back to try again.
  void Committed(const PlacementGroupId& id, uint64_t attempt, const BundlesByNode& round,
                 bool failed);
  // Gives back bundles (all of the group with `removed`, which also tells
  // the node the group is gone).
  void ReturnOn(const PlacementGroupId& id, const BundlesByNode& which, bool removed);
  void AnswerCreators(Group& g);
  void SetState(Group& g, proto::PlacementGroupInfo::State state, const std::string& error = "");
  absl::Status WaitResult(const Group& g) const;
  ClusterView ViewWithAdjustments();
  void ForgetTaken(const PlacementGroupId& id, const NodeId& node);

  StoreClient* store_;
  Publisher* publisher_;
  GcsNodeTable* nodes_;
  Clock* clock_;
  EventLoop* loop_;
  rpc::ClientPool<rpc::NodeManagerClient> node_clients_;
  std::map<PlacementGroupId, Group> groups_;
  std::map<std::string, PlacementGroupId> names_;
  std::vector<Adjustment> adjustments_;
  std::vector<RemovalListener> removal_listeners_;
  bool shutting_down_ = false;
};

BundleStrategy ToBundleStrategy(proto::PlacementGroupInfo::Strategy s);

}  // namespace lumen::gcs
