// Placement groups: resources reserved as bundles on the cluster's nodes, all
// at once or not at all, for tasks and actors to run in later.
//
//   auto pg = lumen::CreatePlacementGroup({{{{"CPU", 1}}, {{"CPU", 1}}},
//                                          lumen::PlacementStrategy::kStrictSpread});
//   if (!pg.ok() || !pg->Wait(10'000).ok()) ...;        // both bundles reserved
//   auto a = lumen::Actor(Counter::Create).SetPlacementGroup(*pg, 0).Remote(0);
//   auto r = lumen::Task(Add).SetPlacementGroup(*pg, 1).Remote(1, 2);
//   lumen::RemovePlacementGroup(*pg);                    // kills a, returns the CPUs
//
// A task or actor in a bundle takes its resources (default {CPU: 1} for a
// task, none for an actor) out of the bundle's, never out of the node's
// free pool. A group belongs to the job that made it and goes with it,
// unless detached.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lumen/id.h"
#include "lumen/serialization.h"

namespace lumen {

enum class PlacementStrategy {
  kPack,          // as few nodes as possible (best effort)
  kSpread,        // as many nodes as possible (best effort)
  kStrictPack,    // every bundle on one node
  kStrictSpread,  // every bundle on a different node
};

// Resource name -> amount, as for SetResources.
using Bundle = std::map<std::string, double>;

struct PlacementGroupOptions {
  std::vector<Bundle> bundles;  // at least one, none empty
  PlacementStrategy strategy = PlacementStrategy::kPack;
  std::string name;       // optional; unique among the cluster's live groups
  bool detached = false;  // outlives its job, until removed
};

enum class PlacementGroupState {
  kPending,  // waiting for room
  kCreated,  // every bundle reserved
  kRemoved,
  kRescheduling,  // a node holding bundles died; placing those again
  kInfeasible,    // no set of nodes in the cluster could ever hold it
};

struct PlacementGroupInfo {
  PlacementGroupId id;
  std::string name;
  PlacementStrategy strategy = PlacementStrategy::kPack;
  std::vector<Bundle> bundles;
  std::vector<NodeId> bundle_nodes;  // where each bundle is (nil: not placed)
  PlacementGroupState state = PlacementGroupState::kPending;
  std::string error;  // why it is infeasible
  bool detached = false;
};

class PlacementGroup {
 public:
  PlacementGroup() = default;
  explicit PlacementGroup(const PlacementGroupId& id) : id_(id) {}

  const PlacementGroupId& ID() const { return id_; }
  bool IsNil() const { return id_.IsNil(); }
  // OK once every bundle is reserved. DEADLINE_EXCEEDED when `timeout_ms`
  // (< 0: forever) passes first; FAILED_PRECONDITION when no set of nodes
  // could ever hold it (the message says which bundle and why); NOT_FOUND
  // once removed.
  absl::Status Wait(int64_t timeout_ms = -1) const;
  // Its state and where its bundles are.
  absl::StatusOr<PlacementGroupInfo> Info() const;

  // A group travels to tasks and actors as its id (msgpack).
  template <typename Packer>
  void msgpack_pack(Packer& pk) const {
    pk.pack(id_.Binary());
  }
  void msgpack_unpack(const msgpack::object& o) {
    std::string bytes;
    o.convert(bytes);
    id_ = PlacementGroupId::FromBinary(bytes);
  }
  friend bool operator==(const PlacementGroup& a, const PlacementGroup& b) {
    return a.id_ == b.id_;
  }

 private:
  PlacementGroupId id_;
};

// Asks the cluster for the group and returns at once (Wait for it).
// INVALID_ARGUMENT for no bundles, an empty bundle or a bad amount;
// ALREADY_EXISTS for a taken name.
absl::StatusOr<PlacementGroup> CreatePlacementGroup(const PlacementGroupOptions& options);
// Returns the group's resources to its nodes and kills the tasks and actors
// running in it (their Get reports why). NOT_FOUND if already removed.
absl::Status RemovePlacementGroup(const PlacementGroup& group);
// The live group named `name`, or NOT_FOUND.
absl::StatusOr<PlacementGroup> GetPlacementGroup(const std::string& name);

}  // namespace lumen
