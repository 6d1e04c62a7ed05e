// GrpcServer hosts lumen services on one port. Components never see gRPC
// types: they implement a handler interface (rpc/*_service.h) whose methods
// run on the component's event loop, after the server checked the token.
//
// Shutdown order: stop the component's event loop first (no handler runs any
// more), then Shutdown() the server, which answers every call still waiting
// for a reply with UNAVAILABLE.
#pragma once

#include <memory>
#include <string>

#include "common/event_loop.h"
#include "rpc/rpc.h"

#include <map>

namespace grpc {
class ServerBuilder;
}

namespace lumen::rpc {

class CallTracker;
struct Method;

// What service glue needs to dispatch calls: where handlers run, the token
// to check and the tracker of open calls. Plain data; cheap to copy.
struct ServiceContext {
  EventLoop* loop = nullptr;
  std::string token;
  CallTracker* tracker = nullptr;
};

// A service ready to be hosted (made by the Make*Service functions).
class Service {
 public:
  virtual ~Service() = default;
  // Its methods by full gRPC name ("/lumen.proto.GcsKvService/KvPut").
  virtual const std::map<std::string, Method>& methods() const = 0;
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port
  std::string token;
};

// Applies lumen's bounds on what callers can make a gRPC server hold (memory
// for messages in flight, threads, streams per connection, request size) to
// a server built outside GrpcServer (the serve gRPC ingress).
void ApplyServerBounds(grpc::ServerBuilder* builder, const std::string& name,
                       size_t max_request_bytes);

class GrpcServer {
 public:
  GrpcServer(std::string name, ServerOptions options);
  ~GrpcServer();

  // Context for services whose handlers run on `loop`.
  ServiceContext MakeContext(EventLoop* loop);
  void AddService(std::unique_ptr<Service> service);
  // Binds and starts serving; port() is valid afterwards.
  absl::Status Start();
  int port() const;
  const std::string& host() const;
  // Answers open calls with UNAVAILABLE and stops; idempotent.
  void Shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lumen::rpc

// Declares a handler method, for the handler interfaces in rpc/*_service.h.
#define LUMEN_HANDLER_DECL(METHOD)                                            \
  virtual void Handle##METHOD(const ::lumen::proto::METHOD##Request& request, \
                              ::lumen::proto::METHOD##Reply* reply,           \
                              ::lumen::rpc::SendReply send) = 0
// Declares the override of a handler method in a component.
#define LUMEN_HANDLER_IMPL(METHOD)                                    \
  void Handle##METHOD(const ::lumen::proto::METHOD##Request& request, \
                      ::lumen::proto::METHOD##Reply* reply, ::lumen::rpc::SendReply send) override
