// The node manager's Prometheus figures (docs/metrics.md lists them): its
// own, read from its state when scraped, and its workers' and drivers'.
#include <algorithm>

#include "common/logging.h"
#include "node/node_manager.h"
#include "prometheus/check_names.h"

namespace lumen::node {
namespace {

// A worker or driver that has not reported for this long is gone.
constexpr int64_t kWorkerMetricsExpiryMs = 10'000;
// What one process may report at once.
constexpr int kMaxFamiliesPerWorker = 1'000;
constexpr int kMaxSamplesPerWorker = 10'000;
constexpr size_t kMaxReportingWorkers = 4'096;

}  // namespace

absl::Status NodeManager::StartMetrics() {
  if (config_.metrics_port < 0) return absl::OkStatus();
  LUMEN_ASSIGN_OR_RETURN(
      metrics_, rpc::MetricsExporter::Start(
                    {.host = config_.host, .port = config_.metrics_port, .token = config_.token}));
  metrics_source_ = metrics_->AddFromLoop(&loop_, [this] { return CollectMetrics(); });
  LUMEN_LOG_INFO("node manager metrics on http://{}:{}/metrics", config_.host, metrics_->port());
  return absl::OkStatus();
}

std::vector<prometheus::MetricFamily> NodeManager::CollectMetrics() {
  using rpc::AddSample;
  using rpc::CounterFamily;
  using rpc::GaugeFamily;
  const proto::NodeInfo info = SelfInfo();
  const proto::NodeStats& st = info.stats();
  const std::string node = node_id_.Hex();
  const std::map<std::string, std::string> self = {{"node_id", node}};
  std::vector<prometheus::MetricFamily> out;
  auto one = [&](prometheus::MetricFamily f, double value) {
    AddSample(&f, self, value);
    out.push_back(std::move(f));
  };
  auto per_resource = [&](prometheus::MetricFamily f,
                          const google::protobuf::Map<std::string, double>& values) {
    for (const auto& [resource, v] : std::map<std::string, double>(values.begin(), values.end())) {
      AddSample(&f, {{"node_id", node}, {"resource", resource}}, v);
    }
    out.push_back(std::move(f));
  };
  per_resource(GaugeFamily("lumen_node_resources_total",
                           "Resources this node has (CPU, GPU, memory bytes, custom)"),
               info.resources_total());
  per_resource(GaugeFamily("lumen_node_resources_available",
                           "Resources of this node not held by a lease or a bundle"),
               info.resources_available());
  one(GaugeFamily("lumen_node_cpu_busy_percent",
                  "CPU busy on this node's machine, of all its CPUs, over the last report period"),
      host_.cpu_percent);
  one(GaugeFamily("lumen_node_memory_used_bytes",
                  "Memory in use on this node's machine (MemTotal - MemAvailable)"),
      static_cast<double>(host_.mem_used_bytes));
  one(GaugeFamily("lumen_node_memory_total_bytes", "Memory of this node's machine"),
      static_cast<double>(host_.mem_total_bytes));
  one(GaugeFamily("lumen_object_store_used_bytes", "Bytes of objects in this node's store"),
      static_cast<double>(st.object_store_used()));
  one(GaugeFamily("lumen_object_store_capacity_bytes", "Size of this node's object store"),
      static_cast<double>(st.object_store_capacity()));
  one(GaugeFamily("lumen_object_store_objects", "Objects in this node's store"),
      static_cast<double>(st.num_objects()));
  one(CounterFamily("lumen_object_pulls_total", "Objects pulled here from other nodes"),
      static_cast<double>(st.objects_pulled()));
  one(CounterFamily("lumen_object_pulled_bytes_total", "Bytes pulled here from other nodes"),
      static_cast<double>(st.bytes_pulled()));
  one(CounterFamily("lumen_leases_granted_total", "Worker leases this node granted"),
      static_cast<double>(st.leases_granted()));
  one(CounterFamily("lumen_leases_spilled_total",
                    "Lease requests sent on to another node (spillback)"),
      static_cast<double>(st.leases_spilled()));
  one(GaugeFamily("lumen_leases_active", "Worker leases held now"),
      static_cast<double>(st.num_leased_workers()));
  one(GaugeFamily("lumen_leases_queued", "Lease requests waiting for room on this node"),
      leases_ ? static_cast<double>(leases_->NumQueued()) : 0.0);
  one(CounterFamily("lumen_node_tasks_executed_total",
                    "Tasks run by workers leased from this node (counted when a lease ends)"),
      static_cast<double>(st.tasks_executed()));
  {
    auto f = GaugeFamily("lumen_worker_processes", "Worker processes of this node, by state");
    int64_t leased = st.num_leased_workers();
    AddSample(&f, {{"node_id", node}, {"state", "leased"}}, static_cast<double>(leased));
    AddSample(&f, {{"node_id", node}, {"state", "other"}},
              static_cast<double>(std::max<int64_t>(0, st.num_workers() - leased)));
    out.push_back(std::move(f));
  }
  one(GaugeFamily("lumen_drivers", "Driver processes attached to this node"),
      static_cast<double>(drivers_.size()));
  one(GaugeFamily("lumen_node_draining", "1 while this node drains"), info.draining() ? 1 : 0);

  // This process's own registry (its RPC server), then its workers'.
  rpc::MergeFamilies(&out, rpc::ProcessRegistry().Collect(), self);
  const int64_t now = clock_->NowMs();
  for (auto it = worker_metrics_.begin(); it != worker_metrics_.end();) {
    if (now - it->second.reported_ms > kWorkerMetricsExpiryMs) {
      it = worker_metrics_.erase(it);
      continue;
    }
    rpc::MergeFamilies(&out, it->second.families,
                       {{"node_id", node}, {"worker_id", it->first.Hex()}});
    ++it;
  }
  return out;
}

void NodeManager::HandleReportMetrics(const proto::ReportMetricsRequest& request,
                                      proto::ReportMetricsReply* reply, rpc::SendReply send) {
  if (request.worker_id().size() != WorkerId::kSize) {
    send(absl::InvalidArgumentError("ReportMetrics: worker_id must be " +
                                    std::to_string(WorkerId::kSize) + " bytes"));
    return;
  }
  int samples = 0;
  for (const auto& f : request.families()) samples += f.samples_size();
  if (request.families_size() > kMaxFamiliesPerWorker || samples > kMaxSamplesPerWorker) {
    send(absl::ResourceExhaustedError(
        "ReportMetrics: " + std::to_string(request.families_size()) + " metrics with " +
        std::to_string(samples) + " series; a process may report at most " +
        std::to_string(kMaxFamiliesPerWorker) + " metrics and " +
        std::to_string(kMaxSamplesPerWorker) + " series (fewer tag values?)"));
    return;
  }
  for (const auto& f : request.families()) {
    if (!prometheus::CheckMetricName(f.name())) {
      send(absl::InvalidArgumentError("ReportMetrics: '" + f.name().substr(0, 200) +
                                      "' is not a Prometheus metric name"));
      return;
    }
    for (const auto& s : f.samples()) {
      for (const auto& [label, value] : s.labels()) {
        if (!prometheus::CheckLabelName(label)) {
          send(absl::InvalidArgumentError("ReportMetrics: metric " + f.name() + " has '" +
                                          label.substr(0, 200) +
                                          "', which is not a Prometheus label name"));
          return;
        }
      }
    }
  }
  WorkerId id = WorkerId::FromBinary(request.worker_id());
  if (!worker_metrics_.count(id) && worker_metrics_.size() >= kMaxReportingWorkers) {
    send(absl::ResourceExhaustedError("ReportMetrics: this node already keeps the metrics of " +
                                      std::to_string(kMaxReportingWorkers) + " processes"));
    return;
  }
  WorkerMetrics& m = worker_metrics_[id];
  m.families = rpc::FromProto(request.families());
  m.reported_ms = clock_->NowMs();
  send(absl::OkStatus());
}

}  // namespace lumen::node
