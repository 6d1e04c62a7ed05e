// gRPC glue and client for the node manager service.
#include "rpc/node_manager_service.h"

#include "proto/node.grpc.pb.h"
#include "rpc/client.h"
#include "rpc/dispatch.h"

namespace lumen::rpc {
namespace {

LUMEN_SERVICE_BEGIN(NodeManagerGlue, NodeManagerService, NodeManagerHandler)
LUMEN_RPC_METHOD(RegisterWorker)
LUMEN_RPC_METHOD(RegisterDriver)
LUMEN_RPC_METHOD(RequestWorkerLease)
LUMEN_RPC_METHOD(ReturnWorker)
LUMEN_RPC_METHOD(WorkerBlocked)
LUMEN_RPC_METHOD(SealObject)
LUMEN_RPC_METHOD(PullObject)
LUMEN_RPC_METHOD(ReadObjectChunk)
LUMEN_RPC_METHOD(FreeObjects)
LUMEN_RPC_METHOD(GetNodeStats)
LUMEN_RPC_METHOD(KillWorker)
LUMEN_RPC_METHOD(PrepareBundles)
LUMEN_RPC_METHOD(CommitBundles)
LUMEN_RPC_METHOD(ReturnBundles)
LUMEN_RPC_METHOD(ReportMetrics)
LUMEN_RPC_METHOD(SubmitJob)
LUMEN_RPC_METHOD(StopJob)
LUMEN_RPC_METHOD(ReadJobLogs)
LUMEN_RPC_METHOD(ReadLog)
LUMEN_RPC_METHOD(ListWorkers)
LUMEN_RPC_METHOD(ListObjects)
LUMEN_SERVICE_END(NodeManagerHandler)

}  // namespace

std::unique_ptr<Service> MakeNodeManagerService(ServiceContext ctx, NodeManagerHandler* handler) {
  return std::make_unique<NodeManagerGlue>(std::move(ctx), handler);
}

NodeManagerClient::NodeManagerClient(const std::string& address, const std::string& token,
                                     EventLoop* loop)
    : address_(address),
      client_(std::make_unique<GrpcClient<proto::NodeManagerService>>(MakeChannel(address), token,
                                                                      loop)) {}

NodeManagerClient::~NodeManagerClient() = default;
void NodeManagerClient::Close() { client_->Close(); }

LUMEN_CLIENT_DEF(NodeManagerClient, NodeManagerService, client_, RegisterWorker)
LUMEN_CLIENT_DEF(NodeManagerClient, NodeManagerService, client_, RegisterDriver)
LUMEN_CLIENT_DEF(NodeManagerClient, NodeManagerService, client_, RequestWorkerLease)
LUMEN_CLIENT_DEF(NodeManagerClient, NodeManagerService, client_, ReturnWorker)
LUMEN_CLIENT_DEF(NodeManagerClient, NodeManagerService, client_, WorkerBlocked)
LUMEN_CLIENT_DEF(NodeManagerClient, NodeManagerService, client_, SealObject)
LUMEN_CLIENT_DEF(NodeManagerClient, NodeManagerService, client_, PullObject)
LUMEN_CLIENT_DEF(NodeManagerClient, NodeManagerService, client_, ReadObjectChunk)
LUMEN_CLIENT_DEF(NodeManagerClient, NodeManagerService, client_, FreeObjects)
LUMEN_CLIENT_DEF(NodeManagerClient, NodeManagerService, client_, GetNodeStats)
LUMEN_CLIENT_DEF(NodeManagerClient, NodeManagerService, client_, KillWorker)
LUMEN_CLIENT_DEF(NodeManagerClient, NodeManagerService, client_, PrepareBundles)
LUMEN_CLIENT_DEF(NodeManagerClient, NodeManagerService, client_, CommitBundles)
LUMEN_CLIENT_DEF(NodeManagerClient, NodeManagerService, client_, ReturnBundles)
LUMEN_CLIENT_DEF(NodeManagerClient, NodeManagerService, client_, ReportMetrics)
LUMEN_CLIENT_DEF(NodeManagerClient, NodeManagerService, client_, SubmitJob)
LUMEN_CLIENT_DEF(NodeManagerClient, NodeManagerService, client_, StopJob)
LUMEN_CLIENT_DEF(NodeManagerClient, NodeManagerService, client_, ReadJobLogs)
LUMEN_CLIENT_DEF(NodeManagerClient, NodeManagerService, client_, ReadLog)
LUMEN_CLIENT_DEF(NodeManagerClient, NodeManagerService, client_, ListWorkers)
LUMEN_CLIENT_DEF(NodeManagerClient, NodeManagerService, client_, ListObjects)

}  // namespace lumen::rpc
