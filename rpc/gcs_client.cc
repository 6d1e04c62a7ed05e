// GcsClient; see gcs_client.h.
#include "rpc/gcs_client.h"

#include "proto/gcs.grpc.pb.h"
#include "rpc/client.h"

namespace lumen::rpc {

GcsClient::GcsClient(const std::string& address, const std::string& token, EventLoop* loop)
    : address_(address) {
  auto channel = MakeChannel(address);
  node_ = std::make_unique<GrpcClient<proto::GcsNodeService>>(channel, token, loop);
  job_ = std::make_unique<GrpcClient<proto::GcsJobService>>(channel, token, loop);
  kv_ = std::make_unique<GrpcClient<proto::GcsKvService>>(channel, token, loop);
  pubsub_ = std::make_unique<GrpcClient<proto::GcsPubSubService>>(channel, token, loop);
  actor_ = std::make_unique<GrpcClient<proto::GcsActorService>>(channel, token, loop);
  group_ = std::make_unique<GrpcClient<proto::GcsPlacementGroupService>>(channel, token, loop);
  task_ = std::make_unique<GrpcClient<proto::GcsTaskService>>(channel, token, loop);
}

GcsClient::~GcsClient() = default;

LUMEN_CLIENT_DEF(GcsClient, GcsNodeService, node_, RegisterNode)
LUMEN_CLIENT_DEF(GcsClient, GcsNodeService, node_, UnregisterNode)
LUMEN_CLIENT_DEF(GcsClient, GcsNodeService, node_, ReportNode)
LUMEN_CLIENT_DEF(GcsClient, GcsNodeService, node_, GetAllNodes)
LUMEN_CLIENT_DEF(GcsClient, GcsNodeService, node_, DrainNode)
LUMEN_CLIENT_DEF(GcsClient, GcsJobService, job_, AddJob)
LUMEN_CLIENT_DEF(GcsClient, GcsJobService, job_, MarkJobFinished)
LUMEN_CLIENT_DEF(GcsClient, GcsJobService, job_, GetJob)
LUMEN_CLIENT_DEF(GcsClient, GcsJobService, job_, GetAllJobs)
LUMEN_CLIENT_DEF(GcsClient, GcsKvService, kv_, KvPut)
LUMEN_CLIENT_DEF(GcsClient, GcsKvService, kv_, KvGet)
LUMEN_CLIENT_DEF(GcsClient, GcsKvService, kv_, KvDel)
LUMEN_CLIENT_DEF(GcsClient, GcsKvService, kv_, KvKeys)
LUMEN_CLIENT_DEF(GcsClient, GcsKvService, kv_, KvExists)
LUMEN_CLIENT_DEF(GcsClient, GcsPubSubService, pubsub_, Subscribe)
LUMEN_CLIENT_DEF(GcsClient, GcsPubSubService, pubsub_, Poll)
LUMEN_CLIENT_DEF(GcsClient, GcsPubSubService, pubsub_, Unsubscribe)
LUMEN_CLIENT_DEF(GcsClient, GcsPubSubService, pubsub_, SubscribeKey)
LUMEN_CLIENT_DEF(GcsClient, GcsActorService, actor_, CreateActor)
LUMEN_CLIENT_DEF(GcsClient, GcsActorService, actor_, GetActorInfo)
LUMEN_CLIENT_DEF(GcsClient, GcsActorService, actor_, KillActor)
LUMEN_CLIENT_DEF(GcsClient, GcsActorService, actor_, ListActors)
LUMEN_CLIENT_DEF(GcsClient, GcsActorService, actor_, ReportActorWorkerExit)
LUMEN_CLIENT_DEF(GcsClient, GcsPlacementGroupService, group_, CreatePlacementGroup)
LUMEN_CLIENT_DEF(GcsClient, GcsPlacementGroupService, group_, RemovePlacementGroup)
LUMEN_CLIENT_DEF(GcsClient, GcsPlacementGroupService, group_, GetPlacementGroup)
LUMEN_CLIENT_DEF(GcsClient, GcsPlacementGroupService, group_, WaitPlacementGroup)
LUMEN_CLIENT_DEF(GcsClient, GcsPlacementGroupService, group_, ListPlacementGroups)
LUMEN_CLIENT_DEF(GcsClient, GcsTaskService, task_, AddTaskEvents)
LUMEN_CLIENT_DEF(GcsClient, GcsTaskService, task_, ListTasks)

}  // namespace lumen::rpc
