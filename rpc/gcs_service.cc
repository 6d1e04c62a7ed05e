// gRPC glue for the GCS services.
#include "rpc/gcs_service.h"

#include "proto/gcs.grpc.pb.h"
#include "rpc/dispatch.h"

namespace lumen::rpc {
namespace {

LUMEN_SERVICE_BEGIN(NodeGlue, GcsNodeService, GcsNodeHandler)
LUMEN_RPC_METHOD(RegisterNode)
LUMEN_RPC_METHOD(UnregisterNode)
LUMEN_RPC_METHOD(ReportNode)
LUMEN_RPC_METHOD(GetAllNodes)
LUMEN_RPC_METHOD(DrainNode)
LUMEN_SERVICE_END(GcsNodeHandler)

LUMEN_SERVICE_BEGIN(JobGlue, GcsJobService, GcsJobHandler)
LUMEN_RPC_METHOD(AddJob)
LUMEN_RPC_METHOD(MarkJobFinished)
LUMEN_RPC_METHOD(GetJob)
LUMEN_RPC_METHOD(GetAllJobs)
LUMEN_SERVICE_END(GcsJobHandler)

LUMEN_SERVICE_BEGIN(KvGlue, GcsKvService, GcsKvHandler)
LUMEN_RPC_METHOD_AT(KvPut, ::lumen::rpc::RunOn::kLoop, ::lumen::rpc::kMaxLargeRequestBytes)
LUMEN_RPC_METHOD(KvGet)
LUMEN_RPC_METHOD(KvDel)
LUMEN_RPC_METHOD(KvKeys)
LUMEN_RPC_METHOD(KvExists)
LUMEN_SERVICE_END(GcsKvHandler)

LUMEN_SERVICE_BEGIN(PubSubGlue, GcsPubSubService, GcsPubSubHandler)
LUMEN_RPC_METHOD(Subscribe)
LUMEN_RPC_METHOD(Poll)
LUMEN_RPC_METHOD(Unsubscribe)
LUMEN_RPC_METHOD(SubscribeKey)
LUMEN_SERVICE_END(GcsPubSubHandler)

LUMEN_SERVICE_BEGIN(ActorGlue, GcsActorService, GcsActorHandler)
LUMEN_RPC_METHOD_AT(CreateActor, ::lumen::rpc::RunOn::kLoop, ::lumen::rpc::kMaxLargeRequestBytes)
LUMEN_RPC_METHOD(GetActorInfo)
LUMEN_RPC_METHOD(KillActor)
LUMEN_RPC_METHOD(ListActors)
LUMEN_RPC_METHOD(ReportActorWorkerExit)
LUMEN_SERVICE_END(GcsActorHandler)

LUMEN_SERVICE_BEGIN(PlacementGroupGlue, GcsPlacementGroupService, GcsPlacementGroupHandler)
LUMEN_RPC_METHOD(CreatePlacementGroup)
LUMEN_RPC_METHOD(RemovePlacementGroup)
LUMEN_RPC_METHOD(GetPlacementGroup)
LUMEN_RPC_METHOD(WaitPlacementGroup)
LUMEN_RPC_METHOD(ListPlacementGroups)
LUMEN_SERVICE_END(GcsPlacementGroupHandler)

LUMEN_SERVICE_BEGIN(TaskGlue, GcsTaskService, GcsTaskHandler)
LUMEN_RPC_METHOD_AT(AddTaskEvents, ::lumen::rpc::RunOn::kLoop, ::lumen::rpc::kMaxLargeRequestBytes)
LUMEN_RPC_METHOD(ListTasks)
LUMEN_SERVICE_END(GcsTaskHandler)

}  // namespace

std::unique_ptr<Service> MakeGcsTaskService(ServiceContext ctx, GcsTaskHandler* handler) {
  return std::make_unique<TaskGlue>(std::move(ctx), handler);
}
std::unique_ptr<Service> MakeGcsPlacementGroupService(ServiceContext ctx,
                                                      GcsPlacementGroupHandler* handler) {
  return std::make_unique<PlacementGroupGlue>(std::move(ctx), handler);
}
std::unique_ptr<Service> MakeGcsNodeService(ServiceContext ctx, GcsNodeHandler* handler) {
  return std::make_unique<NodeGlue>(std::move(ctx), handler);
}
std::unique_ptr<Service> MakeGcsJobService(ServiceContext ctx, GcsJobHandler* handler) {
  return std::make_unique<JobGlue>(std::move(ctx), handler);
}
std::unique_ptr<Service> MakeGcsKvService(ServiceContext ctx, GcsKvHandler* handler) {
  return std::make_unique<KvGlue>(std::move(ctx), handler);
}
std::unique_ptr<Service> MakeGcsPubSubService(ServiceContext ctx, GcsPubSubHandler* handler) {
  return std::make_unique<PubSubGlue>(std::move(ctx), handler);
}
std::unique_ptr<Service> MakeGcsActorService(ServiceContext ctx, GcsActorHandler* handler) {
  return std::make_unique<ActorGlue>(std::move(ctx), handler);
}

}  // namespace lumen::rpc
