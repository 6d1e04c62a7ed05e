// Internal to rpc/. The client half of lumen's RPC plumbing: channels to peers, the cluster
// token on every call, per-attempt deadlines and retries with backoff for
// UNAVAILABLE. Thread-safe.
//
// Completion callbacks run on the EventLoop given to the client (component
// code then stays on its own loop), or on a gRPC thread when it is null.
#pragma once

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "common/event_loop.h"
#include "rpc/dispatch.h"
#include "rpc/rpc.h"

namespace lumen::rpc {

// One channel per peer address, shared by all clients of a process.
class ChannelCache {
 public:
  std::shared_ptr<grpc::Channel> Get(const std::string& address);
  // Drops the channel to a peer known to be gone.
  void Forget(const std::string& address);

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<grpc::Channel>> channels_;
};

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address);

// Calls one generated service. Destroying the client cancels the calls in
// flight and waits for their callbacks; a retry that comes due afterwards
// completes with CANCELLED. Destroy it before the loop it delivers to.
template <typename Service>
class GrpcClient {
 public:
  using Stub = typename Service::Stub;
  template <typename Req, typename Rep>
  using Method = void (Stub::async::*)(grpc::ClientContext*, const Req*, Rep*,
                                       std::function<void(grpc::Status)>);

  GrpcClient(std::shared_ptr<grpc::Channel> channel, std::string token, EventLoop* loop)
      : core_(std::make_shared<Core>()) {
    core_->stub = Service::NewStub(channel);
    core_->token = std::move(token);
    core_->loop = loop;
  }
  ~GrpcClient() { core_->Close(); }
  // Cancels the calls in flight and waits for their callbacks; later calls
  // complete at once with CANCELLED.
  void Close() { core_->Close(); }
  GrpcClient(const GrpcClient&) = delete;
  GrpcClient& operator=(const GrpcClient&) = delete;

  template <typename Req, typename Rep>
  void Call(Method<Req, Rep> method, const Req& request, Callback<Rep> callback,
            const CallOptions& options) {
    auto a = std::make_shared<Attempt<Req, Rep>>();
    a->method = method;
    a->request = request;
    a->callback = std::move(callback);
    a->options = options;
    a->give_up_at =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(options.retry_for_ms);
    Start(core_, std::move(a));
  }

 private:
  struct Core {
    std::unique_ptr<Stub> stub;
    std::string token;
    EventLoop* loop = nullptr;
    std::mutex mu;
    std::condition_variable cv;
    bool closed = false;
    std::unordered_set<grpc::ClientContext*> in_flight;  // calls gRPC still owns
    int completing = 0;                                  // Done() calls still running

    void Close() {
      std::unique_lock<std::mutex> lock(mu);
      closed = true;
      for (grpc::ClientContext* ctx : in_flight) ctx->TryCancel();
      cv.wait(lock, [this] { return in_flight.empty() && completing == 0; });
    }
  };

  template <typename Req, typename Rep>
  struct Attempt {
    Method<Req, Rep> method;
    Req request;
    Callback<Rep> callback;
    CallOptions options;
    std::chrono::steady_clock::time_point give_up_at;
    int64_t backoff_ms = 25;
    std::unique_ptr<grpc::ClientContext> context;
    Rep reply;
  };

  template <typename Req, typename Rep>
  static void Start(std::shared_ptr<Core> core, std::shared_ptr<Attempt<Req, Rep>> a) {
    a->context = std::make_unique<grpc::ClientContext>();
    if (!core->token.empty()) a->context->AddMetadata(kTokenMetadataKey, core->token);
    a->context->set_deadline(std::chrono::system_clock::now() +
                             std::chrono::milliseconds(a->options.timeout_ms));
    a->reply.Clear();
    {
      std::lock_guard<std::mutex> lock(core->mu);
      if (core->closed) {
        Deliver(core, a, absl::CancelledError("client closed"));
        return;
      }
      core->in_flight.insert(a->context.get());
    }
    (core->stub->async()->*(a->method))(a->context.get(), &a->request, &a->reply,
                                        [core, a](grpc::Status status) { Done(core, a, status); });
  }

  template <typename Req, typename Rep>
  static void Done(std::shared_ptr<Core> core, std::shared_ptr<Attempt<Req, Rep>> a,
                   const grpc::Status& status) {
    bool closed;
    {
      // gRPC is done with this context: a retry may replace it from now on.
      std::lock_guard<std::mutex> lock(core->mu);
      core->in_flight.erase(a->context.get());
      core->completing++;
      closed = core->closed;
    }
    bool retry =
        status.error_code() == grpc::StatusCode::UNAVAILABLE && core->loop && !closed &&
        std::chrono::steady_clock::now() + std::chrono::milliseconds(a->backoff_ms) < a->give_up_at;
    if (retry) {
      int64_t delay = a->backoff_ms;
      a->backoff_ms = std::min<int64_t>(a->backoff_ms * 2, 1000);
      core->loop->PostAfter("rpc.retry", std::chrono::milliseconds(delay),
                            [core, a] { Start(core, a); });
    } else if (core->loop != nullptr) {
      Deliver(core, a, FromGrpc(status));
    }
    {
      // Until here the owner's Close() waits, so its loop is still alive.
      std::lock_guard<std::mutex> lock(core->mu);
      core->completing--;
      core->cv.notify_all();
    }
    // Inline delivery last: the callback may destroy the client.
    if (!retry && core->loop == nullptr) Deliver(core, a, FromGrpc(status));
  }

  template <typename Req, typename Rep>
  static void Deliver(const std::shared_ptr<Core>& core, std::shared_ptr<Attempt<Req, Rep>> a,
                      absl::Status s) {
    if (core->loop == nullptr) {
      a->callback(s, std::move(a->reply));
    } else {
      core->loop->Post("rpc.reply", [a, s] { a->callback(s, std::move(a->reply)); });
    }
  }

  std::shared_ptr<Core> core_;
};

}  // namespace lumen::rpc

// Defines a typed method declared with LUMEN_CLIENT_DECL (rpc/rpc.h); MEMBER
// is the class's GrpcClient<SERVICE> (a unique_ptr).
#define LUMEN_CLIENT_DEF(CLASS, SERVICE, MEMBER, METHOD)                                      \
  void CLASS::METHOD(const ::lumen::proto::METHOD##Request& request,                          \
                     ::lumen::rpc::Callback<::lumen::proto::METHOD##Reply> callback,          \
                     const ::lumen::rpc::CallOptions& options) {                              \
    MEMBER->Call(&::lumen::proto::SERVICE::Stub::async::METHOD, request, std::move(callback), \
                 options);                                                                    \
  }
