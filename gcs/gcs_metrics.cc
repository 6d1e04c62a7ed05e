// The GCS's Prometheus figures (docs/metrics.md lists them): the cluster's
// tables as they are when scraped. Per-node figures come from the node
// managers themselves.
#include <map>

#include "common/logging.h"
#include "gcs/gcs_server.h"

namespace lumen::gcs {
namespace {

// Calls a table's handler in place (on the loop) for its listing.
template <typename Reply, typename Request, typename Table, typename Handler>
Reply Ask(Table* table, Handler handler, const Request& request) {
  Reply reply;
  (table->*handler)(request, &reply, [](const absl::Status&) {});
  return reply;
}

}  // namespace

absl::Status GcsServer::StartMetrics() {
  if (config_.metrics_port < 0) return absl::OkStatus();
  LUMEN_ASSIGN_OR_RETURN(
      metrics_, rpc::MetricsExporter::Start(
                    {.host = config_.host, .port = config_.metrics_port, .token = config_.token}));
  metrics_->Add(rpc::ProcessRegistryPtr());
  metrics_source_ = metrics_->AddFromLoop(&loop_, [this] { return CollectMetrics(); });
  // Where it is, for `lumen metrics targets`.
  proto::KvPutRequest put;
  put.set_ns(kMetricsNamespace);
  put.set_key("gcs");
  put.set_value(rpc::JoinHostPort(config_.host, metrics_->port()));
  put.set_overwrite(true);
  loop_.Post("gcs.metrics_address",
             [this, put] { Ask<proto::KvPutReply>(&kv_, &GcsKv::HandleKvPut, put); });
  LUMEN_LOG_INFO("GCS metrics on http://{}:{}/metrics", config_.host, metrics_->port());
  return absl::OkStatus();
}

std::vector<prometheus::MetricFamily> GcsServer::CollectMetrics() {
  using rpc::AddSample;
  using rpc::CounterFamily;
  using rpc::GaugeFamily;
  std::vector<prometheus::MetricFamily> out;
  auto by_label = [&](prometheus::MetricFamily f, const std::string& label,
                      const std::map<std::string, double>& counts) {
    for (const auto& [value, n] : counts) AddSample(&f, {{label, value}}, n);
    out.push_back(std::move(f));
  };

  auto nodes = Ask<proto::GetAllNodesReply>(&nodes_, &GcsNodeTable::HandleGetAllNodes,
                                            proto::GetAllNodesRequest());
  std::map<std::string, double> node_states = {{"alive", 0}, {"draining", 0}, {"dead", 0}};
  std::map<std::string, double> total, available;
  for (const auto& n : nodes.nodes()) {
    if (n.state() == proto::NodeInfo::DEAD) {
      node_states["dead"]++;
      continue;
    }
    node_states[n.draining() ? "draining" : "alive"]++;
    for (const auto& [r, v] : n.resources_total()) total[r] += v;
    for (const auto& [r, v] : n.resources_available()) available[r] += v;
  }
  by_label(GaugeFamily("lumen_cluster_nodes", "Nodes the GCS knows, by state (dead: kept ones)"),
           "state", node_states);
  by_label(GaugeFamily("lumen_cluster_resources_total", "Resources of the live nodes, summed"),
           "resource", total);
  by_label(GaugeFamily("lumen_cluster_resources_available",
                       "Resources of the live nodes not held by leases or bundles, summed"),
           "resource", available);

  auto actors = Ask<proto::ListActorsReply>(&actors_, &GcsActorManager::HandleListActors,
                                            proto::ListActorsRequest());
  std::map<std::string, double> actor_states;
  for (int s = proto::ActorInfo::State_MIN; s <= proto::ActorInfo::State_MAX; ++s) {
    actor_states[proto::ActorInfo::State_Name(s)] = 0;
  }
  for (const auto& a : actors.actors()) actor_states[proto::ActorInfo::State_Name(a.state())]++;
  by_label(GaugeFamily("lumen_actors", "Actors by state"), "state", actor_states);

  auto jobs = Ask<proto::GetAllJobsReply>(&jobs_, &GcsJobTable::HandleGetAllJobs,
                                          proto::GetAllJobsRequest());
  std::map<std::string, double> job_states = {{"RUNNING", 0}, {"FINISHED", 0}};
  for (const auto& j : jobs.jobs()) job_states[j.finished() ? "FINISHED" : "RUNNING"]++;
  by_label(GaugeFamily("lumen_jobs", "Jobs (drivers) by state"), "state", job_states);

  auto groups = Ask<proto::ListPlacementGroupsReply>(
      &groups_, &GcsPlacementGroupManager::HandleListPlacementGroups,
      proto::ListPlacementGroupsRequest());
  std::map<std::string, double> group_states;
  for (int s = proto::PlacementGroupInfo::State_MIN; s <= proto::PlacementGroupInfo::State_MAX;
       ++s) {
    group_states[proto::PlacementGroupInfo::State_Name(s)] = 0;
  }
  for (const auto& g : groups.groups()) {
    group_states[proto::PlacementGroupInfo::State_Name(g.state())]++;
  }
  by_label(GaugeFamily("lumen_placement_groups", "Placement groups by state"), "state",
           group_states);

  proto::ListTasksRequest tasks_request;
  tasks_request.set_summary(true);
  tasks_request.set_limit(1);
  proto::ListTasksReply tasks = tasks_.List(tasks_request);
  {
    auto f = GaugeFamily("lumen_tasks",
                         "Tasks and actor calls in the GCS's task window, by function and "
                         "state (the window keeps the newest records)");
    for (const auto& s : tasks.summary()) {
      for (const auto& [state, n] :
           std::map<std::string, int64_t>(s.by_state().begin(), s.by_state().end())) {
        AddSample(&f, {{"name", s.name()}, {"state", state}}, static_cast<double>(n));
      }
    }
    out.push_back(std::move(f));
  }
  auto single = [&](prometheus::MetricFamily f, double v) {
    AddSample(&f, {}, v);
    out.push_back(std::move(f));
  };
  single(GaugeFamily("lumen_task_records", "Task records the GCS keeps now"),
         static_cast<double>(tasks.kept()));
  single(CounterFamily("lumen_task_records_dropped_total",
                       "Task records dropped, oldest first, to stay within the window"),
         static_cast<double>(tasks.dropped()));
  single(CounterFamily("lumen_task_events_dropped_at_source_total",
                       "Task events workers dropped before sending (their buffer was full)"),
         static_cast<double>(tasks.dropped_at_source()));
  return out;
}

}  // namespace lumen::gcs
