// NodeManager: one per machine (or several per machine in tests). Registers
// with the GCS and reports its resources; keeps a view of the cluster from
// pub/sub; grants worker leases (lease_manager.h) from its worker pool
// (worker_pool.h); hosts the node's shared-memory object store
// (object_store.h) and pulls objects from other nodes (pull_manager.h).
// All logic runs on one loop ("node_manager").
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/event_loop.h"
#include "common/host_stats.h"
#include "common/process.h"
#include "gcs/subscriber.h"
#include "node/code_cache.h"
#include "node/job_supervisor.h"
#include "node/lease_manager.h"
#include "node/object_store.h"
#include "node/pull_manager.h"
#include "node/worker_pool.h"
#include "rpc/client_pool.h"
#include "rpc/core_worker_service.h"
#include "rpc/gcs_client.h"
#include "rpc/metrics.h"
#include "rpc/node_manager_service.h"
#include "rpc/server.h"
#include "scheduling/cluster_view.h"

namespace lumen::node {

struct NodeManagerConfig {
  std::string gcs_address;
  std::string token;
  std::string host = "127.0.0.1";
  int port = 0;
  std::map<std::string, double> resources;  // empty: detected (CPU, GPU, memory)
  int64_t object_store_memory = 0;          // 0: 30% of available memory
  bool is_head = false;
  std::string session_dir;  // empty: the GCS's
  std::string worker_path;  // empty: lumen_worker next to this executable
  int64_t idle_worker_timeout_ms = 60'000;
  int64_t gcs_connect_timeout_ms = 30'000;
  // Prometheus /metrics on `host`: -1 none, 0 any free port.
  int metrics_port = -1;
  // A worker's or job's log beyond this is rotated (one old copy kept).
  int64_t max_log_bytes = int64_t{64} << 20;
};

// The resources of this machine: CPU (hardware threads), GPU (NVIDIA
// devices), memory (bytes, 70% of total less the object store).
std::map<std::string, double> DetectResources(int64_t object_store_memory);
int64_t DefaultObjectStoreMemory();
// Rotates the worker and job logs in `dir` bigger than `max_bytes`: each is
// copied to NAME.1 and emptied. Returns how many.
int RotateLogFiles(const std::string& dir, int64_t max_bytes);

class NodeManager : public rpc::NodeManagerHandler {
 public:
  NodeManager(NodeManagerConfig config, ProcessLauncher* launcher, Clock* clock = RealClock::Get());
  ~NodeManager() override;

  // Listens, registers with the GCS (retrying up to gcs_connect_timeout_ms)
  // and starts serving leases.
  absl::Status Start();
  // Kills workers, frees the store, leaves the cluster; idempotent.
  void Stop();
  // Called (on the loop) when the GCS declared this node dead.
  void SetFatalHandler(std::function<void(const std::string&)> handler) {
    fatal_ = std::move(handler);
  }
  // Called once a drained node is idle: the process should stop (cleanly).
  void SetLeaveHandler(std::function<void(const std::string&)> handler) {
    leave_ = std::move(handler);
  }

  const NodeId& node_id() const { return node_id_; }
  int port() const { return server_.port(); }
  const std::string& store_prefix() const { return store_prefix_; }

  LUMEN_HANDLER_IMPL(RegisterWorker);
  LUMEN_HANDLER_IMPL(RegisterDriver);
  LUMEN_HANDLER_IMPL(RequestWorkerLease);
  LUMEN_HANDLER_IMPL(ReturnWorker);
  LUMEN_HANDLER_IMPL(WorkerBlocked);
  LUMEN_HANDLER_IMPL(SealObject);
  LUMEN_HANDLER_IMPL(PullObject);
  LUMEN_HANDLER_IMPL(ReadObjectChunk);
  LUMEN_HANDLER_IMPL(FreeObjects);
  LUMEN_HANDLER_IMPL(GetNodeStats);
  LUMEN_HANDLER_IMPL(KillWorker);
  LUMEN_HANDLER_IMPL(PrepareBundles);
  LUMEN_HANDLER_IMPL(CommitBundles);
  LUMEN_HANDLER_IMPL(ReturnBundles);
  LUMEN_HANDLER_IMPL(ReportMetrics);
  LUMEN_HANDLER_IMPL(SubmitJob);
  LUMEN_HANDLER_IMPL(StopJob);
  LUMEN_HANDLER_IMPL(ReadJobLogs);
  LUMEN_HANDLER_IMPL(ReadLog);
  LUMEN_HANDLER_IMPL(ListWorkers);
  LUMEN_HANDLER_IMPL(ListObjects);
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }

 private:
  absl::Status Register();
  void StartOnLoop();
  void OnPubMessage(const proto::PubMessage& m);
  void Resync();
  void ApplyNode(const proto::NodeInfo& node);
  void OnJobFinished(const JobId& job);
  void ReportToGcs();
  void ResourcesChanged();
  void WatchDrivers();
  void RotateLogs();
  // worker_output.cc: workers' new output lines to their drivers.
  void ForwardWorkerOutput();
  std::map<std::string, int64_t> offsets_;  // log file -> bytes forwarded
  // A job's driver core worker (empty: none to tell); nullopt while asking.
  std::map<JobId, std::optional<std::string>> job_drivers_;
  proto::NodeInfo SelfInfo() const;
  std::string AddressOf(const NodeId& id) const;

  NodeManagerConfig config_;
  ProcessLauncher* launcher_;
  Clock* clock_;
  NodeId node_id_;
  std::string store_prefix_;
  std::string node_dir_;
  std::string session_dir_;
  ResourceSet total_;
  int64_t heartbeat_period_ms_ = 500;

  EventLoop loop_{"node_manager"};
  rpc::GrpcServer server_;
  std::unique_ptr<rpc::GcsClient> gcs_;
  std::unique_ptr<gcs::GcsSubscriber> subscriber_;
  rpc::ClientPool<rpc::NodeManagerClient> node_clients_;
  rpc::ClientPool<rpc::CoreWorkerClient> worker_clients_;
  ClusterView view_;
  std::unique_ptr<LocalObjectStore> store_;
  std::unique_ptr<PullManager> pulls_;
  std::unique_ptr<CodeCache> code_;
  std::unique_ptr<WorkerPool> pool_;
  std::unique_ptr<LeaseManager> leases_;
  std::unique_ptr<JobSupervisor> jobs_;  // drivers of `lumen job submit`
  std::map<pid_t, JobId> drivers_;
  std::unique_ptr<PeriodicTimer> heartbeat_timer_, pool_timer_, driver_timer_, log_timer_;
  bool resources_dirty_ = true;
  bool report_scheduled_ = false;
  HostStatsReader host_stats_;  // loop only
  HostStats host_;              // the last reading; loop only
  bool started_ = false;
  bool stopped_ = false;
  std::function<void(const std::string&)> fatal_;
  std::function<void(const std::string&)> leave_;
  std::string stop_reason_ = "node manager stopped";
  // Draining: leaves once no lease is held (actors moved, tasks done).
  void LeaveWhenIdle();

  // Metrics (node_metrics.cc): this node's figures and what its workers and
  // drivers last reported, each kept until it stops reporting.
  absl::Status StartMetrics();
  std::vector<prometheus::MetricFamily> CollectMetrics();
  struct WorkerMetrics {
    std::vector<prometheus::MetricFamily> families;
    int64_t reported_ms = 0;
  };
  std::map<WorkerId, WorkerMetrics> worker_metrics_;
  std::unique_ptr<rpc::MetricsExporter> metrics_;
  std::shared_ptr<rpc::LoopCollectable> metrics_source_;
};

}  // namespace lumen::node
