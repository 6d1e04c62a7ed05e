// Node membership and health; see node_table.h.
#include "gcs/node_table.h"

#include "common/logging.h"

namespace lumen::gcs {

static constexpr char kNodesTable[] = "nodes";

void GcsNodeTable::HandleRegisterNode(const proto::RegisterNodeRequest& request,
                                      proto::RegisterNodeReply* reply, rpc::SendReply send) {
  NodeId id = NodeId::FromBinary(request.node().node_id());
  if (id.IsNil()) {
    send(absl::InvalidArgumentError("node_id must be " + std::to_string(NodeId::kSize) + " bytes"));
    return;
  }
  if (nodes_.count(id)) {
    send(absl::AlreadyExistsError("node " + id.Hex() + " is already registered"));
    return;
  }
  Entry& e = nodes_[id];
  e.info = request.node();
  e.info.set_state(proto::NodeInfo::ALIVE);
  e.info.set_start_time_ms(clock_->WallMs());
  e.last_report_ms = clock_->NowMs();
  Persist(e.info);
  PublishNode(proto::NODE_CHANGES, e.info);
  LUMEN_LOG_INFO("node registered node={} address={}:{} resources_total={}", id.Short(),
                 e.info.address().host(), e.info.address().port(), e.info.resources_total_size());
  reply->set_heartbeat_period_ms(options_.heartbeat_period_ms);
  reply->set_node_timeout_ms(options_.node_timeout_ms);
  reply->set_session_dir(options_.session_dir);
  send(absl::OkStatus());
}

void GcsNodeTable::HandleUnregisterNode(const proto::UnregisterNodeRequest& request,
                                        proto::UnregisterNodeReply* reply, rpc::SendReply send) {
  auto it = nodes_.find(NodeId::FromBinary(request.node_id()));
  if (it != nodes_.end() && it->second.info.state() == proto::NodeInfo::ALIVE) {
    MarkDead(&it->second, request.reason().empty() ? "node left" : request.reason());
  }
  send(absl::OkStatus());
}

void GcsNodeTable::HandleReportNode(const proto::ReportNodeRequest& request,
                                    proto::ReportNodeReply* reply, rpc::SendReply send) {
  auto it = nodes_.find(NodeId::FromBinary(request.node_id()));
  if (it == nodes_.end()) {
    send(absl::NotFoundError("node is not registered: register first"));
    return;
  }
  Entry& e = it->second;
  if (e.info.state() == proto::NodeInfo::DEAD) {
    reply->set_node_is_dead(true);
    send(absl::OkStatus());
    return;
  }
  e.last_report_ms = clock_->NowMs();
  *e.info.mutable_stats() = request.stats();
  if (request.resources_changed()) {
    *e.info.mutable_resources_available() = request.resources_available();
    *e.info.mutable_resources_total() = request.resources_total();
    e.info.set_resources_version(request.resources_version());
    PublishNode(proto::RESOURCE_VIEW, e.info);
  }
  send(absl::OkStatus());
}

absl::Status GcsNodeTable::Restore() {
  LUMEN_ASSIGN_OR_RETURN(auto all, store_->GetAll(kNodesTable));
  for (const auto& [key, value] : all) {
    Entry e;
    if (!e.info.ParseFromString(value)) return absl::DataLossError("a stored node does not parse");
    e.last_report_ms = clock_->NowMs();
    nodes_[NodeId::FromBinary(key)] = std::move(e);
  }
  if (!all.empty()) LUMEN_LOG_INFO("restored {} nodes ({} alive)", nodes_.size(), NumAlive());
  return absl::OkStatus();
}

void GcsNodeTable::HandleDrainNode(const proto::DrainNodeRequest& request,
                                   proto::DrainNodeReply* reply, rpc::SendReply send) {
  NodeId id = NodeId::FromBinary(request.node_id());
  auto it = nodes_.find(id);
  if (it == nodes_.end() || it->second.info.state() != proto::NodeInfo::ALIVE) {
    send(absl::NotFoundError("no live node " + id.Hex() + " (see `lumen status`)"));
    return;
  }
  Entry& e = it->second;
  if (!e.info.draining()) {
    e.info.set_draining(true);
    Persist(e.info);
    PublishNode(proto::NODE_CHANGES, e.info);
    LUMEN_LOG_INFO("draining node={} reason=\"{}\"", id.Short(), request.reason());
    for (const auto& listener : drain_listeners_) listener(id);
  }
  send(absl::OkStatus());
}

void GcsNodeTable::HandleGetAllNodes(const proto::GetAllNodesRequest& request,
                                     proto::GetAllNodesReply* reply, rpc::SendReply send) {
  for (const auto& [id, e] : nodes_) *reply->add_nodes() = e.info;
  send(absl::OkStatus());
}

void GcsNodeTable::CheckHealth() {
  int64_t now = clock_->NowMs();
  for (auto& [id, e] : nodes_) {
    if (e.info.state() != proto::NodeInfo::ALIVE) continue;
    int64_t silent = now - e.last_report_ms;
    if (silent > options_.node_timeout_ms) {
      MarkDead(&e, "no heartbeat for " + std::to_string(silent) + " ms (timeout " +
                       std::to_string(options_.node_timeout_ms) + " ms)");
    }
  }
  // Keep only the most recent dead nodes.
  size_t dead = nodes_.size() - NumAlive();
  for (auto it = nodes_.begin(); dead > options_.max_dead_nodes_kept && it != nodes_.end();) {
    if (it->second.info.state() == proto::NodeInfo::DEAD) {
      (void)store_->Delete(kNodesTable, it->first.Binary());
      it = nodes_.erase(it);
      dead--;
    } else {
      ++it;
    }
  }
}

size_t GcsNodeTable::NumAlive() const {
  size_t n = 0;
  for (const auto& [id, e] : nodes_) n += e.info.state() == proto::NodeInfo::ALIVE;
  return n;
}

void GcsNodeTable::MarkDead(Entry* e, const std::string& reason) {
  e->info.set_state(proto::NodeInfo::DEAD);
  e->info.set_death_time_ms(clock_->WallMs());
  e->info.set_death_reason(reason);
  e->info.mutable_resources_available()->clear();
  Persist(e->info);
  PublishNode(proto::NODE_CHANGES, e->info);
  NodeId id = NodeId::FromBinary(e->info.node_id());
  LUMEN_LOG_WARN("node dead node={} reason=\"{}\"", id.Short(), reason);
  for (const auto& listener : death_listeners_) listener(id);
}

ClusterView GcsNodeTable::View() const {
  ClusterView view;
  for (const auto& [id, e] : nodes_) {
    // A draining node takes no new work.
    if (e.info.state() != proto::NodeInfo::ALIVE || e.info.draining()) continue;
    std::map<std::string, double> total(e.info.resources_total().begin(),
                                        e.info.resources_total().end());
    std::map<std::string, double> available(e.info.resources_available().begin(),
                                            e.info.resources_available().end());
    NodeView v;
    v.id = id;
    v.address = NodeManagerAddress(id);
    v.resources.total = ResourceSet::FromMap(total).value_or(ResourceSet());
    v.resources.available = ResourceSet::FromMap(available).value_or(ResourceSet());
    view.Upsert(std::move(v));
  }
  return view;
}

uint64_t GcsNodeTable::ResourcesVersion(const NodeId& node) const {
  auto it = nodes_.find(node);
  return it == nodes_.end() ? 0 : it->second.info.resources_version();
}

std::string GcsNodeTable::NodeManagerAddress(const NodeId& node) const {
  auto it = nodes_.find(node);
  if (it == nodes_.end() || it->second.info.state() != proto::NodeInfo::ALIVE) return "";
  return it->second.info.address().host() + ":" + std::to_string(it->second.info.address().port());
}

void GcsNodeTable::Persist(const proto::NodeInfo& info) {
  absl::Status s = store_->Put(kNodesTable, info.node_id(), info.SerializeAsString());
  if (!s.ok()) LUMEN_LOG_ERROR("cannot store node: {}", s.ToString());
}

void GcsNodeTable::PublishNode(proto::Channel channel, const proto::NodeInfo& info) {
  proto::PubMessage m;
  m.set_channel(channel);
  m.set_key(info.node_id());
  *m.mutable_node() = info;
  publisher_->Publish(m);
}

}  // namespace lumen::gcs
