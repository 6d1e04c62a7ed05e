// GcsServer wiring: services, timers, start and stop.
#include "gcs/gcs_server.h"

#include <future>

#include "common/logging.h"
#include "gcs/redis_store.h"
#include "rpc/gcs_service.h"

namespace lumen::gcs {
absl::StatusOr<std::unique_ptr<StoreClient>> MakeStore(const std::string& storage) {
  if (storage.empty() || storage == "memory") return std::make_unique<InMemoryStoreClient>();
  LUMEN_ASSIGN_OR_RETURN(RedisAddress address, ParseRedisUrl(storage));
  LUMEN_ASSIGN_OR_RETURN(auto redis, RedisStoreClient::Connect(address));
  return std::unique_ptr<StoreClient>(std::move(redis));
}

GcsServer::GcsServer(GcsConfig config, Clock* clock, std::unique_ptr<StoreClient> store)
    : config_(std::move(config)),
      clock_(clock),
      store_(store ? std::move(store) : std::make_unique<InMemoryStoreClient>()),
      publisher_(clock, Publisher::Options{.max_poll_hold_ms = config_.max_poll_hold_ms,
                                           .defer =
                                               [this](std::function<void()> flush) {
                                                 loop_.Post("gcs.pubsub_flush", std::move(flush));
                                               }}),
      nodes_(store_.get(), &publisher_, clock,
             NodeTableOptions{.heartbeat_period_ms = config_.heartbeat_period_ms,
                              .node_timeout_ms = config_.node_timeout_ms,
                              .session_dir = config_.session_dir}),
      jobs_(store_.get(), &publisher_, clock),
      kv_(store_.get()),
      groups_(store_.get(), &publisher_, &nodes_, clock, &loop_, config_.token),
      actors_(store_.get(), &publisher_, &nodes_, &groups_, clock, &loop_, config_.token,
              proto::Address()),
      tasks_(config_.max_task_records),
      server_("gcs", rpc::ServerOptions{config_.host, config_.port, config_.token}) {
  rpc::ServiceContext ctx = server_.MakeContext(&loop_);
  server_.AddService(rpc::MakeGcsNodeService(ctx, &nodes_));
  server_.AddService(rpc::MakeGcsJobService(ctx, &jobs_));
  server_.AddService(rpc::MakeGcsKvService(ctx, &kv_));
  server_.AddService(rpc::MakeGcsPubSubService(ctx, &publisher_));
  server_.AddService(rpc::MakeGcsActorService(ctx, &actors_));
  server_.AddService(rpc::MakeGcsPlacementGroupService(ctx, &groups_));
  server_.AddService(rpc::MakeGcsTaskService(ctx, &tasks_));
  nodes_.AddDrainListener([this](const NodeId& node) { actors_.OnNodeDraining(node); });
  nodes_.AddDeathListener([this](const NodeId& node) {
    groups_.OnNodeDead(node);
    actors_.OnNodeDead(node);
  });
  jobs_.AddFinishListener([this](const JobId& job) {
    actors_.OnJobFinished(job);
    groups_.OnJobFinished(job);
  });
  groups_.AddRemovalListener(
      [this](const PlacementGroupId& group) { return actors_.OnPlacementGroupRemoved(group); });
}

GcsServer::~GcsServer() { Stop(); }

absl::Status GcsServer::Restore() {
  // Before the loop runs: nothing else touches the tables yet.
  constexpr char kMeta[] = "meta";
  LUMEN_ASSIGN_OR_RETURN(auto id, store_->Get(kMeta, "cluster_id"));
  identity_.set_persistent(store_->persistent());
  if (id) {
    identity_.set_cluster_id(*id);
    LUMEN_LOG_INFO("GCS restarting cluster {} from its storage", *id);
    LUMEN_RETURN_IF_ERROR(nodes_.Restore());
    LUMEN_RETURN_IF_ERROR(groups_.Restore());
    LUMEN_RETURN_IF_ERROR(actors_.Restore());
  } else {
    identity_.set_cluster_id(NodeId::FromRandom().Hex());  // 16 random bytes
    LUMEN_RETURN_IF_ERROR(store_->Put(kMeta, "cluster_id", identity_.cluster_id()));
  }
  // In memory the GCS's death is the cluster's: no need to wait long.
  int64_t patience = identity_.persistent() ? kPersistentLostAfterMs : config_.node_timeout_ms;
  identity_.set_lost_after_ms(config_.lost_after_ms > 0 ? config_.lost_after_ms : patience);
  publisher_.SetIdentity(identity_);
  return absl::OkStatus();
}

absl::Status GcsServer::Start() {
  LUMEN_RETURN_IF_ERROR(Restore());
  loop_.Start();
  started_ = true;
  LUMEN_RETURN_IF_ERROR(server_.Start());
  LUMEN_RETURN_IF_ERROR(StartMetrics());
  std::promise<void> armed;
  loop_.Post("gcs.start_timers", [this, &armed] {
    int64_t check_ms = std::max<int64_t>(50, std::min<int64_t>(config_.node_timeout_ms / 4, 250));
    health_timer_ = loop_.RunEvery("gcs.check_health", std::chrono::milliseconds(check_ms),
                                   [this] { nodes_.CheckHealth(); });
    pubsub_timer_ = loop_.RunEvery("gcs.pubsub_tick", std::chrono::milliseconds(500),
                                   [this] { publisher_.Tick(); });
    groups_timer_ = loop_.RunEvery("gcs.groups_tick", std::chrono::milliseconds(50),
                                   [this] { groups_.Tick(); });
    armed.set_value();
  });
  armed.get_future().wait();
  return absl::OkStatus();
}

void GcsServer::Stop() {
  if (stopped_ || !started_) return;
  stopped_ = true;
  if (metrics_source_) metrics_source_->Close();
  std::promise<void> done;
  loop_.Post("gcs.stop", [this, &done] {
    health_timer_.reset();
    pubsub_timer_.reset();
    groups_timer_.reset();
    publisher_.Close();
    actors_.Shutdown();
    groups_.Shutdown();
    done.set_value();
  });
  done.get_future().wait_for(std::chrono::seconds(2));
  loop_.Stop();
  server_.Shutdown();
  metrics_.reset();
}

}  // namespace lumen::gcs
