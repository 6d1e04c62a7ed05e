// The serving data plane: proxies and deployment handles send requests
// straight to a replica over one TCP connection each way, not through the
// engine's actor calls. A replica listens on its worker's host; callers
// multiplex any number of requests over one connection and match answers by
// id. Frames are [u32 payload length][u64 call id][msgpack payload], little
// endian; the first frame a caller sends carries the cluster token (id 0),
// and a listener answers nothing on a connection until it matched.
//
// Why: an actor call crosses the caller's event loop, gRPC's threads and the
// object machinery twice; this path wakes one thread on each side (the
// replica's reader runs the request itself, the caller's reader answers
// it), which is what keeps the proxy's added latency and CPU per request
// small. Control calls (health, load, reconfigure) stay actor calls.
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

namespace lumen::serve {

// In a replica: accepts connections and runs `handler` for each request on
// the connection's threads (a thread reads a request and runs it while
// another waits for the next; up to `max_threads` per connection).
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
  ReplicaListener() = default;
  void AcceptLoop();
  void Serve(std::shared_ptr<Conn> conn);
  // Starts another thread for `conn`; false (logged) when none can start.
  bool Spawn(std::shared_ptr<Conn> conn);

  std::string address_;
  std::string token_;
  int max_threads_ = 1;
  Handler handler_;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  std::mutex mu_;
  std::condition_variable idle_cv_;
  int threads_ = 0;  // serving threads, all connections
  std::map<Conn*, std::weak_ptr<Conn>> conns_;
};

// In a caller: one connection to one replica, made on first use.
// `done` runs on the channel's reader thread (or the caller's, for a
// channel already broken): keep it short. A lost connection answers every
// call in flight UNAVAILABLE (the dispatcher sends those elsewhere) and
// leaves the channel broken; make a new one.
class ReplicaChannel {
 public:
  using Done = std::function<void(absl::StatusOr<Response>)>;
  ReplicaChannel(std::string address, std::string token);
  ~ReplicaChannel();  // answers what is in flight CANCELLED

  void Call(const Request& request, Done done);
  bool broken() const;
  size_t in_flight() const;  // calls not answered yet
  const std::string& address() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
  std::thread reader_;
};

}  // namespace lumen::serve
