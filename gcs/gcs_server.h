// GcsServer: the cluster's control store. One loop ("gcs") runs every table;
// one gRPC server carries the node, job, KV and pub/sub services.
#pragma once

#include <memory>
#include <string>

#include "common/clock.h"
#include "common/event_loop.h"
#include "gcs/actor_manager.h"
#include "gcs/job_table.h"
#include "gcs/node_table.h"
#include "gcs/pubsub.h"
#include "gcs/store.h"
#include "gcs/task_events.h"
#include "rpc/metrics.h"
#include "rpc/server.h"

namespace lumen::gcs {

inline constexpr int kDefaultGcsPort = 6389;
inline constexpr int64_t kPersistentLostAfterMs = 60'000;

struct GcsConfig {
  std::string host = "127.0.0.1";
  int port = kDefaultGcsPort;  // 0: any free port
  std::string token;           // empty: no token checked (tests only)
  std::string session_dir;
  int64_t heartbeat_period_ms = 500;
  int64_t node_timeout_ms = 4000;
  int64_t max_poll_hold_ms = 10'000;
  // How long clients that cannot reach the GCS wait before they take the
  // cluster for gone (0: the node timeout in memory, 60 s with storage that
  // a restarted GCS finds again).
  int64_t lost_after_ms = 0;
  // Task records kept for the state API (the oldest dropped first).
  size_t max_task_records = 100'000;
  // Prometheus /metrics on `host`: -1 none, 0 any free port.
  int metrics_port = -1;
};

// The KV namespace where the GCS notes its metrics address (key "gcs").
inline constexpr char kMetricsNamespace[] = "lumen_metrics";

// The store a --storage value names: "" (in memory) or
// redis://HOST:PORT[/NAMESPACE]; the error says what is wrong.
absl::StatusOr<std::unique_ptr<StoreClient>> MakeStore(const std::string& storage);

class GcsServer {
 public:
  // `clock` is not owned; no `store`: in memory.
  explicit GcsServer(GcsConfig config, Clock* clock = RealClock::Get(),
                     std::unique_ptr<StoreClient> store = nullptr);
  ~GcsServer();

  // Listens and starts the loop. port() is valid afterwards.
  absl::Status Start();
  // Answers held calls and stops; idempotent.
  void Stop();
  int port() const { return server_.port(); }
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }
  const std::string& cluster_id() const { return identity_.cluster_id(); }

 private:
  // Takes the cluster's id (and, from persistent storage, its state).
  absl::Status Restore();
  // gcs_metrics.cc
  absl::Status StartMetrics();
  std::vector<prometheus::MetricFamily> CollectMetrics();

  GcsConfig config_;
  Clock* clock_;
  EventLoop loop_{"gcs"};
  std::unique_ptr<StoreClient> store_;
  Publisher publisher_;
  GcsNodeTable nodes_;
  GcsJobTable jobs_;
  GcsKv kv_;
  GcsPlacementGroupManager groups_;
  GcsActorManager actors_;
  GcsTaskEvents tasks_;
  rpc::GrpcServer server_;
  std::unique_ptr<rpc::MetricsExporter> metrics_;
  std::shared_ptr<rpc::LoopCollectable> metrics_source_;
  std::unique_ptr<PeriodicTimer> health_timer_;
  std::unique_ptr<PeriodicTimer> pubsub_timer_;
  std::unique_ptr<PeriodicTimer> groups_timer_;
  proto::ClusterIdentity identity_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace lumen::gcs
