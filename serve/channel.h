// The serving data plane: proxies and deployment handles send requests
// straight to a replica over one TCP connection each way, not through the
// engine's actor calls. A replica listens on its worker's host; callers
// multiplex any number of requests over one connection and match answers by
// id. Frames are [u32 payload length][u64 call id][msgpack payload], little
// endian; the first frame a caller sends carries the cluster token (id 0),
// and a listener answers nothing on a connection until it matched.
//
// Why: an actor call crosses the caller's event loop, gRPC's threads and the
// object machinery twice. On this path no thread hands a request to
// another: the replica thread that reads a request runs it and writes its
// answer, and the caller's dispatcher loop writes requests and reads
// answers itself, which is what keeps the proxy's added latency and CPU
// per request small. Control calls (health, load, reconfigure) stay actor
// calls.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "lumen/serve.h"

namespace boost::asio {
class io_context;
}

namespace lumen::serve {

// In a replica: accepts connections and runs `handler` for each request.
// `max_threads + 1` threads (leader and followers, on Boost.Asio) share the
// work: one at a time waits on every connection's socket; the one that
// reads a request passes that role to an idle thread and runs the request,
// then writes its answer straight to the socket. At most `max_threads`
// requests run at once. A new connection gets no thread: it has 10 s from
// accept to present the token (at most 256 wait at once; beyond that the oldest is
// closed), and out of file descriptors the listener pauses accepting. A
// connection with `4 * max_threads` requests unanswered is not read until
// answers go out.
class ReplicaListener {
 public:
  using Handler = std::function<Response(Request)>;
  // Binds `host` on any free port.
  static absl::StatusOr<std::unique_ptr<ReplicaListener>> Start(const std::string& host,
                                                                std::string token, int max_threads,
                                                                Handler handler);
  ~ReplicaListener();  // closes every connection; waits for running requests

  const std::string& address() const { return address_; }  // host:port

 private:
  struct Conn;
  struct Impl;
  ReplicaListener() = default;

  std::string address_;
  std::unique_ptr<Impl> impl_;
};

// In a caller: one connection to one replica, made on first use. Its
// socket work runs on `io` when given (the dispatcher passes its own
// loop's, so a request is written and its answer read on the loop's thread
// with no hand-off between threads), else on two I/O threads the process's
// channels share; never a thread per channel. `done` runs there (or on the
// caller's thread, for a channel already broken): keep it short. A lost
// connection answers every call in flight UNAVAILABLE (the dispatcher sends
// those elsewhere) and leaves the channel broken; make a new one.
// Destroying the channel answers what is in flight CANCELLED, possibly just
// after the destructor returns.
class ReplicaChannel {
 public:
  using Done = std::function<void(absl::StatusOr<Response>)>;
  ReplicaChannel(std::string address, std::string token, boost::asio::io_context* io = nullptr);
  ~ReplicaChannel();

  void Call(const Request& request, Done done);
  bool broken() const;
  size_t in_flight() const;  // calls not answered yet
  const std::string& address() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace lumen::serve
