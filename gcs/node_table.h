// GcsNodeTable: cluster membership. Node managers register, then report
// every heartbeat period (and soon after their resources change). A node
// that has not reported for node_timeout_ms is declared dead and everyone is
// told on NODE_CHANGES; if it reports again it is told to exit. Runs on the
// GCS loop.
#pragma once

#include <functional>
#include <map>
#include <vector>

#include "common/clock.h"
#include "gcs/pubsub.h"
#include "gcs/store.h"
#include "lumen/id.h"
#include "proto/gcs.pb.h"
#include "rpc/gcs_service.h"
#include "scheduling/cluster_view.h"

namespace lumen::gcs {

struct NodeTableOptions {
  int64_t heartbeat_period_ms = 500;
  int64_t node_timeout_ms = 4000;
  size_t max_dead_nodes_kept = 1000;
  std::string session_dir;
};

class GcsNodeTable : public rpc::GcsNodeHandler {
 public:
  GcsNodeTable(StoreClient* store, Publisher* publisher, Clock* clock, NodeTableOptions options)
      : store_(store), publisher_(publisher), clock_(clock), options_(std::move(options)) {}

  LUMEN_HANDLER_IMPL(RegisterNode);
  LUMEN_HANDLER_IMPL(UnregisterNode);
  LUMEN_HANDLER_IMPL(ReportNode);
  LUMEN_HANDLER_IMPL(GetAllNodes);
  LUMEN_HANDLER_IMPL(DrainNode);

  // Declares dead every alive node silent for longer than the timeout.
  void CheckHealth();
  // Loads the nodes a GCS before this one knew (persistent storage); live
  // ones get a full timeout to report to this GCS.
  absl::Status Restore();
  size_t NumAlive() const;

  // What the GCS knows of every live node's resources, for placing actors
  // and placement groups.
  ClusterView View() const;
  // The node manager's host:port, or "" for a dead or unknown node.
  std::string NodeManagerAddress(const NodeId& node) const;
  // The resources version of the node's latest report (0: none).
  uint64_t ResourcesVersion(const NodeId& node) const;
  // Called (on the GCS loop) for every node declared dead.
  void AddDrainListener(std::function<void(const NodeId&)> listener) {
    drain_listeners_.push_back(std::move(listener));
  }
  void AddDeathListener(std::function<void(const NodeId&)> listener) {
    death_listeners_.push_back(std::move(listener));
  }

 private:
  struct Entry {
    proto::NodeInfo info;
    int64_t last_report_ms = 0;
  };
  void MarkDead(Entry* entry, const std::string& reason);
  void Persist(const proto::NodeInfo& info);
  void PublishNode(proto::Channel channel, const proto::NodeInfo& info);

  StoreClient* store_;
  Publisher* publisher_;
  Clock* clock_;
  NodeTableOptions options_;
  std::map<NodeId, Entry> nodes_;
  std::vector<std::function<void(const NodeId&)>> death_listeners_;
  std::vector<std::function<void(const NodeId&)>> drain_listeners_;
};

}  // namespace lumen::gcs
