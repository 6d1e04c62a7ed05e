// A small HTTP/1.1 server on Boost.Beast: keep-alive, request size limits,
// 400 for what does not parse, chunked answers for responses with chunks.
// Each request goes to the handler with a `reply` function that may be
// called later from any thread, exactly once. Runs its own I/O threads.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "lumen/serve.h"

namespace lumen::serve {

class HttpServer {
 public:
  using Reply = std::function<void(Response)>;
  using Handler = std::function<void(Request, Reply)>;
  struct Options {
    std::string host = "127.0.0.1";
    int port = 0;  // 0: any free port
    int threads = 1;
    size_t max_body_bytes = 16 << 20;
    int idle_timeout_s = 60;
  };

  HttpServer(Options options, Handler handler);
  ~HttpServer();  // stops and joins

  // Binds and starts serving; the error names the address on failure.
  absl::Status Start();
  int port() const { return port_; }
  // Runs `fn` after `delay_ms` on the server's threads (request timeouts);
  // the returned function cancels it (from any thread).
  std::function<void()> After(int64_t delay_ms, std::function<void()> fn);
  // Stops accepting and serving and joins the threads: no handler runs
  // after it returns; replies given later are dropped. Idempotent.
  void Stop();

 private:
  struct Impl;
  Options options_;
  Handler handler_;
  int port_ = 0;
  std::unique_ptr<Impl> impl_;
  std::vector<std::thread> threads_;
};

// "a%20b" -> "a b"; '+' stays '+' in paths, becomes ' ' in queries.
std::string UrlDecode(const std::string& s, bool query);

}  // namespace lumen::serve
