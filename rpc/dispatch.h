// Internal to rpc/: the glue between gRPC's callback API and lumen handlers.
// Included only by rpc/*.cc.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "rpc/server.h"

namespace lumen::rpc {

// Initializes gRPC once for the life of the process, and keeps the callback
// API's completion queue alive with it. gRPC 1.51 builds that queue (and its
// "nexting" threads) on first use and tears it down when its last user goes;
// when the last user is a channel released from one of those very threads,
// the teardown races with itself and aborts (grpc/grpc#32584). Pinning the
// queue, and never shutting gRPC down, removes both races.
void KeepGrpcInitialized();

// HTTP/2 frame and per-stream window sizes for every lumen connection.
inline constexpr int kMaxFrameBytes = 1 << 20;
// What a server reads of one request: large values (objects) move in
// chunks; the largest single request is a code file (KvPut).
inline constexpr int kMaxRequestBytes = 64 << 20;
inline constexpr size_t kMaxServerMemoryBytes = size_t{1} << 30;
inline constexpr int kMaxServerThreads = 256;
inline constexpr int kMaxStreamsPerConnection = 256;
inline constexpr int kStreamWindowBytes = 8 << 20;

grpc::Status ToGrpc(const absl::Status& s);
absl::Status FromGrpc(const grpc::Status& s);

// Calls that have not been answered yet; thread-safe.
class CallTracker {
 public:
  class Call {
   public:
    explicit Call(grpc::ServerUnaryReactor* reactor) : reactor_(reactor) {}
    // Finishes once: runs `fill` (moves the reply in) then answers. Later
    // calls do nothing. Returns true for the call that answered.
    bool Finish(const absl::Status& status, const std::function<void()>& fill);

   private:
    std::atomic<bool> done_{false};
    grpc::ServerUnaryReactor* reactor_;
  };

  // nullptr once shutting down.
  std::shared_ptr<Call> Begin(grpc::ServerUnaryReactor* reactor);
  void End(Call* call);
  // Refuses new calls and answers all open ones with `status`.
  void FinishAll(const absl::Status& status);

 private:
  std::mutex mu_;
  bool closed_ = false;
  std::unordered_map<Call*, std::shared_ptr<Call>> open_;
};

grpc::Status CheckToken(const ServiceContext& ctx, grpc::CallbackServerContext* call);

// Runs `handler(request, reply, send_reply)` on the context's loop. The
// request is moved out of gRPC's buffer, so it stays valid however long the
// handler keeps the call.
template <typename Req, typename Rep, typename Fn>
grpc::ServerUnaryReactor* Dispatch(const ServiceContext& sc, const char* name,
                                   grpc::CallbackServerContext* ctx, const Req* request,
                                   Rep* response, Fn handler) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (grpc::Status auth = CheckToken(sc, ctx); !auth.ok()) {
    reactor->Finish(auth);
    return reactor;
  }
  std::shared_ptr<CallTracker::Call> call = sc.tracker->Begin(reactor);
  if (!call) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"));
    return reactor;
  }
  auto req = std::make_shared<Req>();
  req->Swap(const_cast<Req*>(request));
  auto reply = std::make_shared<Rep>();
  CallTracker* tracker = sc.tracker;
  sc.loop->Post(name, [req, reply, response, call, tracker, handler = std::move(handler)]() {
    handler(*req, reply.get(), [reply, response, call, tracker](absl::Status status) {
      if (call->Finish(status, [&] { response->Swap(reply.get()); })) tracker->End(call.get());
    });
  });
  return reactor;
}

// Like Dispatch, but runs the handler on the gRPC thread that received the
// call: for handlers that are thread-safe and only hand work on (saves a
// thread hop on latency-critical calls).
template <typename Req, typename Rep, typename Fn>
grpc::ServerUnaryReactor* DispatchInline(const ServiceContext& sc, grpc::CallbackServerContext* ctx,
                                         const Req* request, Rep* response, Fn handler) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (grpc::Status auth = CheckToken(sc, ctx); !auth.ok()) {
    reactor->Finish(auth);
    return reactor;
  }
  std::shared_ptr<CallTracker::Call> call = sc.tracker->Begin(reactor);
  if (!call) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"));
    return reactor;
  }
  auto req = std::make_shared<Req>();
  req->Swap(const_cast<Req*>(request));
  auto reply = std::make_shared<Rep>();
  CallTracker* tracker = sc.tracker;
  handler(*req, reply.get(), [req, reply, response, call, tracker](absl::Status status) {
    if (call->Finish(status, [&] { response->Swap(reply.get()); })) tracker->End(call.get());
  });
  return reactor;
}

// Wraps a generated CallbackService subclass as an rpc::Service.
template <typename GrpcService>
class ServiceAdapter : public Service {
 public:
  template <typename... Args>
  explicit ServiceAdapter(Args&&... args) : service_(std::forward<Args>(args)...) {}
  grpc::Service* grpc_service() override { return &service_; }

 private:
  GrpcService service_;
};

}  // namespace lumen::rpc

// Defines the override of one unary method in a generated CallbackService,
// forwarding to `handler_->Handle<Method>(request, reply, send_reply)`.
// The glue class needs members `ServiceContext ctx_` and `handler_`.
#define LUMEN_RPC_METHOD(METHOD)                                                        \
  grpc::ServerUnaryReactor* METHOD(grpc::CallbackServerContext* c,                      \
                                   const ::lumen::proto::METHOD##Request* req,          \
                                   ::lumen::proto::METHOD##Reply* rep) override {       \
    auto* h = handler_;                                                                 \
    return ::lumen::rpc::Dispatch(                                                      \
        ctx_, #METHOD, c, req, rep,                                                     \
        [h](const ::lumen::proto::METHOD##Request& r, ::lumen::proto::METHOD##Reply* p, \
            ::lumen::rpc::SendReply s) { h->Handle##METHOD(r, p, std::move(s)); });     \
  }

// The same, for a handler that may run on gRPC's thread (DispatchInline).
#define LUMEN_RPC_METHOD_INLINE(METHOD)                                                 \
  grpc::ServerUnaryReactor* METHOD(grpc::CallbackServerContext* c,                      \
                                   const ::lumen::proto::METHOD##Request* req,          \
                                   ::lumen::proto::METHOD##Reply* rep) override {       \
    auto* h = handler_;                                                                 \
    return ::lumen::rpc::DispatchInline(                                                \
        ctx_, c, req, rep,                                                              \
        [h](const ::lumen::proto::METHOD##Request& r, ::lumen::proto::METHOD##Reply* p, \
            ::lumen::rpc::SendReply s) { h->Handle##METHOD(r, p, std::move(s)); });     \
  }

// Opens / closes the glue class for SERVICE whose handler type is HANDLER.
#define LUMEN_SERVICE_BEGIN(NAME, SERVICE, HANDLER)                    \
  class NAME final : public ::lumen::proto::SERVICE::CallbackService { \
   public:                                                             \
    NAME(::lumen::rpc::ServiceContext ctx, HANDLER* h) : ctx_(std::move(ctx)), handler_(h) {}
#define LUMEN_SERVICE_END(HANDLER)   \
 private:                            \
  ::lumen::rpc::ServiceContext ctx_; \
  HANDLER* handler_;                 \
  }                                  \
  ;
