// Internal to rpc/: the glue between gRPC's callback API and lumen handlers.
// Included only by rpc/*.cc.
//
// Every lumen server hosts one generic callback service: gRPC hands it each
// call as soon as the call's headers arrive, before any of its message is
// read. The server checks the method and the token there and answers a
// stranger at once, so no unauthenticated byte of a body is ever buffered;
// only then does it read the request, within the method's own size limit.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
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
// What a server reads of one request. Most methods take small messages
// (large values move as objects, in chunks); the few that carry a code file
// or many task arguments at once are declared large. Either limit applies
// only after the caller's token was checked.
inline constexpr size_t kMaxRequestBytes = size_t{4} << 20;
inline constexpr size_t kMaxLargeRequestBytes = size_t{64} << 20;
inline constexpr size_t kMaxServerMemoryBytes = size_t{1} << 30;
inline constexpr int kMaxServerThreads = 256;
inline constexpr int kMaxStreamsPerConnection = 256;
inline constexpr int kStreamWindowBytes = 8 << 20;

grpc::Status ToGrpc(const absl::Status& s);
absl::Status FromGrpc(const grpc::Status& s);

// The server side of one call, as the tracker answers it.
class Answerable {
 public:
  virtual ~Answerable() = default;
  // Sends `reply` (when status is OK) and the status; called once.
  virtual void Answer(const grpc::Status& status, grpc::ByteBuffer* reply) = 0;
};

// Calls that have not been answered yet; thread-safe.
class CallTracker {
 public:
  class Call {
   public:
    explicit Call(Answerable* reactor) : reactor_(reactor) {}
    // Finishes once: on OK, `serialize` writes the reply, then the call is
    // answered. Later calls do nothing. Returns true for the call that
    // answered.
    bool Finish(const absl::Status& status,
                const std::function<bool(grpc::ByteBuffer*)>& serialize);

   private:
    std::atomic<bool> done_{false};
    Answerable* reactor_;
  };

  // nullptr once shutting down.
  std::shared_ptr<Call> Begin(Answerable* reactor);
  void End(Call* call);
  // Refuses new calls and answers all open ones with `status`.
  void FinishAll(const absl::Status& status);

 private:
  std::mutex mu_;
  bool closed_ = false;
  std::unordered_map<Call*, std::shared_ptr<Call>> open_;
};

// Checks the cluster token in a call's metadata (constant time).
grpc::Status CheckToken(const std::string& token,
                        const std::multimap<grpc::string_ref, grpc::string_ref>& metadata);

// One unary method of a hosted service.
struct Method {
  size_t max_request_bytes = kMaxRequestBytes;
  // Parses the request and runs the handler, which answers through `call`.
  std::function<void(grpc::ByteBuffer* request, std::shared_ptr<CallTracker::Call> call)> run;
};

// Where a method's handler runs.
enum class RunOn {
  kLoop,    // the component's event loop
  kInline,  // the gRPC thread that read the request: for thread-safe
            // handlers that only hand work on (saves a hop on hot calls)
};

// The methods of one service, by full gRPC name ("/pkg.Service/Method").
class MethodService : public Service {
 public:
  MethodService(ServiceContext ctx, std::string service_name)
      : ctx_(std::move(ctx)), service_name_(std::move(service_name)) {}
  const std::map<std::string, Method>& methods() const override { return methods_; }

 protected:
  // Adds METHOD: `handler(request, reply, send_reply)`.
  template <typename Req, typename Rep, typename Fn>
  void Add(const char* name, RunOn where, size_t max_request_bytes, Fn handler) {
    EventLoop* loop = ctx_.loop;
    CallTracker* tracker = ctx_.tracker;
    Method m;
    m.max_request_bytes = max_request_bytes;
    m.run = [loop, tracker, where, name, handler = std::move(handler)](
                grpc::ByteBuffer* bytes, std::shared_ptr<CallTracker::Call> call) {
      auto req = std::make_shared<Req>();
      if (!grpc::SerializationTraits<Req>::Deserialize(bytes, req.get()).ok()) {
        if (call->Finish(
                absl::InvalidArgumentError(std::string("the request of ") + name +
                                           " is not a valid " + Req::descriptor()->full_name()),
                nullptr)) {
          tracker->End(call.get());
        }
        return;
      }
      auto reply = std::make_shared<Rep>();
      auto run = [req, reply, call, tracker, handler]() {
        handler(*req, reply.get(), [reply, call, tracker](absl::Status status) {
          auto serialize = [&](grpc::ByteBuffer* out) {
            bool own = false;
            return grpc::SerializationTraits<Rep>::Serialize(*reply, out, &own).ok();
          };
          if (call->Finish(status, serialize)) tracker->End(call.get());
        });
      };
      if (where == RunOn::kInline) {
        run();
      } else {
        loop->Post(name, std::move(run));
      }
    };
    methods_["/" + service_name_ + "/" + name] = std::move(m);
  }

 private:
  ServiceContext ctx_;
  std::string service_name_;
  std::map<std::string, Method> methods_;
};

}  // namespace lumen::rpc

// Defines the glue class NAME for the generated SERVICE, whose calls go to
// HANDLER's Handle<Method>(request, reply, send_reply). Between BEGIN and
// END, one LUMEN_RPC_METHOD* line per method.
#define LUMEN_SERVICE_BEGIN(NAME, SERVICE, HANDLER)                                     \
  class NAME final : public ::lumen::rpc::MethodService {                               \
   public:                                                                              \
    NAME(::lumen::rpc::ServiceContext ctx, HANDLER* handler)                            \
        : MethodService(std::move(ctx), ::lumen::proto::SERVICE::service_full_name()) { \
      [[maybe_unused]] HANDLER* h = handler;

#define LUMEN_RPC_METHOD_AT(METHOD, WHERE, MAX_BYTES)                                 \
  Add<::lumen::proto::METHOD##Request, ::lumen::proto::METHOD##Reply>(                \
      #METHOD, WHERE, MAX_BYTES,                                                      \
      [h](const ::lumen::proto::METHOD##Request& r, ::lumen::proto::METHOD##Reply* p, \
          ::lumen::rpc::SendReply s) { h->Handle##METHOD(r, p, std::move(s)); });

// A method run on the component's loop, with a small request.
#define LUMEN_RPC_METHOD(METHOD) \
  LUMEN_RPC_METHOD_AT(METHOD, ::lumen::rpc::RunOn::kLoop, ::lumen::rpc::kMaxRequestBytes)
// The same, for a handler that may run on gRPC's thread (RunOn::kInline).
#define LUMEN_RPC_METHOD_INLINE(METHOD) \
  LUMEN_RPC_METHOD_AT(METHOD, ::lumen::rpc::RunOn::kInline, ::lumen::rpc::kMaxRequestBytes)

#define LUMEN_SERVICE_END(HANDLER) \
  }                                \
  }                                \
  ;
