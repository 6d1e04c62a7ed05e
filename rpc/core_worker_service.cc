// gRPC glue and client for the core worker service.
#include "rpc/core_worker_service.h"

#include "proto/worker.grpc.pb.h"
#include "rpc/client.h"
#include "rpc/dispatch.h"

namespace lumen::rpc {
namespace {

// Pushed work goes straight to the executor's queue (thread-safe).
LUMEN_SERVICE_BEGIN(CoreWorkerGlue, CoreWorkerService, CoreWorkerHandler)
LUMEN_RPC_METHOD_AT(PushTask, ::lumen::rpc::RunOn::kInline, ::lumen::rpc::kMaxLargeRequestBytes)
LUMEN_RPC_METHOD(AddObjectLocation)
LUMEN_RPC_METHOD(PrintWorkerOutput)
LUMEN_RPC_METHOD_AT(PushActorTasks, ::lumen::rpc::RunOn::kInline,
                    ::lumen::rpc::kMaxLargeRequestBytes)
LUMEN_RPC_METHOD_INLINE(DrainActor)
LUMEN_SERVICE_END(CoreWorkerHandler)

}  // namespace

std::unique_ptr<Service> MakeCoreWorkerService(ServiceContext ctx, CoreWorkerHandler* handler) {
  return std::make_unique<CoreWorkerGlue>(std::move(ctx), handler);
}

CoreWorkerClient::CoreWorkerClient(const std::string& address, const std::string& token,
                                   EventLoop* loop)
    : address_(address),
      client_(std::make_unique<GrpcClient<proto::CoreWorkerService>>(MakeChannel(address), token,
                                                                     loop)) {}

CoreWorkerClient::~CoreWorkerClient() = default;

LUMEN_CLIENT_DEF(CoreWorkerClient, CoreWorkerService, client_, PushTask)
LUMEN_CLIENT_DEF(CoreWorkerClient, CoreWorkerService, client_, AddObjectLocation)
LUMEN_CLIENT_DEF(CoreWorkerClient, CoreWorkerService, client_, PrintWorkerOutput)
LUMEN_CLIENT_DEF(CoreWorkerClient, CoreWorkerService, client_, PushActorTasks)
LUMEN_CLIENT_DEF(CoreWorkerClient, CoreWorkerService, client_, DrainActor)

}  // namespace lumen::rpc
