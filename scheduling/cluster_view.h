// ClusterView: what one node manager (or a simulator) believes about every
// node's resources. The local entry is exact; remote entries are as fresh as
// the last report the GCS relayed. Not thread-safe: owned by one loop.
#pragma once

#include <map>
#include <string>

#include "lumen/id.h"
#include "scheduling/resources.h"

namespace lumen {

struct NodeView {
  NodeId id;
  NodeResources resources;
  std::string address;  // node manager "host:port"
  bool alive = true;
  bool draining = false;  // alive, but takes no new work
};

class ClusterView {
 public:
  // Adds the node or replaces what is known of it.
  void Upsert(NodeView node);
  void SetAvailable(const NodeId& id, const ResourceSet& available);
  void MarkDead(const NodeId& id);
  const NodeView* Find(const NodeId& id) const;
  // Ordered by id, so that every walk over the view is deterministic.
  const std::map<NodeId, NodeView>& nodes() const { return nodes_; }
  size_t NumAlive() const;

 private:
  std::map<NodeId, NodeView> nodes_;
};

}  // namespace lumen
