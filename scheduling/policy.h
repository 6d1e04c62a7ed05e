// Placement policies: given the cluster view, which node should run a task.
// The node manager then grants a lease (that node is itself and has room),
// queues (itself, no room yet) or spills back (another node). Policies are
// registered by name, like every lumen extension; the built-in ones:
//   "hybrid"         local node while it has room, else the least used node
//                    that has room now, else queue where it fits (Ray's
//                    hybrid policy, without its utilisation threshold)
//   "spread"         round robin over the nodes that have room
//   "node_affinity"  the named node; soft falls back to hybrid
#pragma once

#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "scheduling/cluster_view.h"

namespace lumen {

struct PlacementRequest {
  ResourceSet demand;
  std::string policy = "hybrid";
  NodeId target;      // node_affinity
  bool soft = false;  // node_affinity
};

struct Placement {
  bool feasible = false;
  NodeId node;        // when feasible
  std::string error;  // when not: says what was asked and what nodes have
};

class PlacementPolicy {
 public:
  virtual ~PlacementPolicy() = default;
  virtual Placement Place(const ClusterView& view, const NodeId& local,
                          const PlacementRequest& request) = 0;
};

using PlacementPolicyFactory = std::function<std::unique_ptr<PlacementPolicy>()>;

// Name -> factory. The built-ins are always registered.
class PlacementPolicyRegistry {
 public:
  static PlacementPolicyRegistry& Default();
  void Register(const std::string& name, PlacementPolicyFactory factory);
  std::unique_ptr<PlacementPolicy> Create(const std::string& name) const;
  std::vector<std::string> Names() const;

 private:
  std::map<std::string, PlacementPolicyFactory> factories_;
};

// Holds one instance of each registered policy (some keep state, such as
// spread's cursor) and dispatches by request.policy.
class Scheduler {
 public:
  explicit Scheduler(const PlacementPolicyRegistry& registry = PlacementPolicyRegistry::Default());
  Placement Place(const ClusterView& view, const NodeId& local, const PlacementRequest& request);

 private:
  std::map<std::string, std::unique_ptr<PlacementPolicy>> policies_;
};

// The error for a demand no alive node could ever hold.
std::string InfeasibleMessage(const ClusterView& view, const ResourceSet& demand);

}  // namespace lumen
