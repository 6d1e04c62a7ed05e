// The node manager's service as a handler interface, and its client.
#pragma once

#include <memory>
#include <string>

#include "proto/node.pb.h"
#include "rpc/server.h"

namespace lumen::proto {
class NodeManagerService;
}

namespace lumen::rpc {

template <typename Service>
class GrpcClient;

class NodeManagerHandler {
 public:
  virtual ~NodeManagerHandler() = default;
  LUMEN_HANDLER_DECL(RegisterWorker);
  LUMEN_HANDLER_DECL(RegisterDriver);
  LUMEN_HANDLER_DECL(RequestWorkerLease);
  LUMEN_HANDLER_DECL(ReturnWorker);
  LUMEN_HANDLER_DECL(WorkerBlocked);
  LUMEN_HANDLER_DECL(SealObject);
  LUMEN_HANDLER_DECL(PullObject);
  LUMEN_HANDLER_DECL(ReadObjectChunk);
  LUMEN_HANDLER_DECL(FreeObjects);
  LUMEN_HANDLER_DECL(GetNodeStats);
  LUMEN_HANDLER_DECL(KillWorker);
  LUMEN_HANDLER_DECL(PrepareBundles);
  LUMEN_HANDLER_DECL(CommitBundles);
  LUMEN_HANDLER_DECL(ReturnBundles);
  LUMEN_HANDLER_DECL(ReportMetrics);
  LUMEN_HANDLER_DECL(SubmitJob);
  LUMEN_HANDLER_DECL(StopJob);
  LUMEN_HANDLER_DECL(ReadJobLogs);
  LUMEN_HANDLER_DECL(ReadLog);
  LUMEN_HANDLER_DECL(ListWorkers);
  LUMEN_HANDLER_DECL(ListObjects);
};

std::unique_ptr<Service> MakeNodeManagerService(ServiceContext ctx, NodeManagerHandler* handler);

// Thread-safe; callbacks run on `loop` (or a gRPC thread when null).
class NodeManagerClient {
 public:
  NodeManagerClient(const std::string& address, const std::string& token, EventLoop* loop);
  ~NodeManagerClient();
  const std::string& address() const { return address_; }

  LUMEN_CLIENT_DECL(RegisterWorker);
  LUMEN_CLIENT_DECL(RegisterDriver);
  LUMEN_CLIENT_DECL(RequestWorkerLease);
  LUMEN_CLIENT_DECL(ReturnWorker);
  LUMEN_CLIENT_DECL(WorkerBlocked);
  LUMEN_CLIENT_DECL(SealObject);
  LUMEN_CLIENT_DECL(PullObject);
  LUMEN_CLIENT_DECL(ReadObjectChunk);
  LUMEN_CLIENT_DECL(FreeObjects);
  LUMEN_CLIENT_DECL(GetNodeStats);
  LUMEN_CLIENT_DECL(KillWorker);
  LUMEN_CLIENT_DECL(PrepareBundles);
  LUMEN_CLIENT_DECL(CommitBundles);
  LUMEN_CLIENT_DECL(ReturnBundles);
  LUMEN_CLIENT_DECL(ReportMetrics);
  LUMEN_CLIENT_DECL(SubmitJob);
  LUMEN_CLIENT_DECL(StopJob);
  LUMEN_CLIENT_DECL(ReadJobLogs);
  LUMEN_CLIENT_DECL(ReadLog);
  LUMEN_CLIENT_DECL(ListWorkers);
  LUMEN_CLIENT_DECL(ListObjects);
  // See GrpcClient::Close.
  void Close();

 private:
  std::string address_;
  std::unique_ptr<GrpcClient<proto::NodeManagerService>> client_;
};

}  // namespace lumen::rpc
