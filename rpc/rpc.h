// What component code needs to speak RPC without including gRPC: the reply
// callback servers hand to handlers, client callbacks and call options.
#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>

#include "common/status.h"

namespace lumen::rpc {

// Given to every server-side handler; call exactly once, from any thread.
// The handler's reply message must be filled before it is called.
using SendReply = std::function<void(absl::Status)>;

// Client completion: status of the call and the reply (empty unless OK).
template <typename Reply>
using Callback = std::function<void(absl::Status, Reply)>;

struct CallOptions {
  // Deadline of one attempt.
  int64_t timeout_ms = 10'000;
  // Keep retrying UNAVAILABLE (peer not reachable yet) with backoff for this
  // long in total. 0: a single attempt. Only for idempotent calls.
  int64_t retry_for_ms = 0;
};

// Metadata key that carries the cluster token on every call.
inline constexpr char kTokenMetadataKey[] = "x-lumen-token";
// Largest message any lumen service accepts or sends.
inline constexpr int kMaxMessageBytes = 1 << 30;

// "host:port".
std::string JoinHostPort(const std::string& host, int port);
// Splits "host:port"; InvalidArgument naming the problem otherwise.
absl::Status SplitHostPort(const std::string& address, std::string* host, int* port);

// Runs one call and blocks for its reply; for tools and set-up paths, never
// from the thread of the loop the client delivers to.
template <typename Rep, typename StartFn>
absl::StatusOr<Rep> CallSync(StartFn start) {
  auto done = std::make_shared<std::promise<absl::StatusOr<Rep>>>();
  auto future = done->get_future();
  start([done](absl::Status s, Rep reply) {
    if (s.ok()) {
      done->set_value(std::move(reply));
    } else {
      done->set_value(std::move(s));
    }
  });
  try {
    return future.get();
  } catch (const std::future_error&) {  // the callback was dropped unrun
    return absl::CancelledError("the call was abandoned (shutting down)");
  }
}

}  // namespace lumen::rpc

// Declares a typed method `Method(request, callback, options)` of a
// per-service client class; rpc/client.h's LUMEN_CLIENT_DEF defines it.
#define LUMEN_CLIENT_DECL(METHOD)                                             \
  void METHOD(const ::lumen::proto::METHOD##Request& request,                 \
              ::lumen::rpc::Callback<::lumen::proto::METHOD##Reply> callback, \
              const ::lumen::rpc::CallOptions& options = ::lumen::rpc::CallOptions())
