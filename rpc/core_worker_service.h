// The service of every driver and worker as a handler interface, and its
// client.
#pragma once

#include <memory>
#include <string>

#include "proto/worker.pb.h"
#include "rpc/server.h"

namespace lumen::proto {
class CoreWorkerService;
}

namespace lumen::rpc {

template <typename Service>
class GrpcClient;

// PushTask, PushActorTasks and DrainActor run on gRPC's threads (they only queue
// work); AddObjectLocation and PrintWorkerOutput on the handler's loop.
class CoreWorkerHandler {
 public:
  virtual ~CoreWorkerHandler() = default;
  LUMEN_HANDLER_DECL(PushTask);
  LUMEN_HANDLER_DECL(AddObjectLocation);
  LUMEN_HANDLER_DECL(PrintWorkerOutput);
  LUMEN_HANDLER_DECL(PushActorTasks);
  LUMEN_HANDLER_DECL(DrainActor);
};

std::unique_ptr<Service> MakeCoreWorkerService(ServiceContext ctx, CoreWorkerHandler* handler);

// Thread-safe; callbacks run on `loop` (or a gRPC thread when null).
class CoreWorkerClient {
 public:
  CoreWorkerClient(const std::string& address, const std::string& token, EventLoop* loop);
  ~CoreWorkerClient();
  const std::string& address() const { return address_; }

  LUMEN_CLIENT_DECL(PushTask);
  LUMEN_CLIENT_DECL(AddObjectLocation);
  LUMEN_CLIENT_DECL(PrintWorkerOutput);
  LUMEN_CLIENT_DECL(PushActorTasks);
  LUMEN_CLIENT_DECL(DrainActor);

 private:
  std::string address_;
  std::unique_ptr<GrpcClient<proto::CoreWorkerService>> client_;
};

}  // namespace lumen::rpc
