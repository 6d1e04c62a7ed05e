// A small HTTP/1.1 server on Boost.Beast: keep-alive, request size limits,
// 400 for what does not parse, chunked answers for responses with chunks.
// Each request goes to the handler with a `reply` function that may be
// called later from any thread, exactly once. Runs its own I/O threads.
//
// Bounded against what a client can make it hold: connections (beyond the
// cap a new one gets a 503 and is closed; accept backs off when the process
// is out of file descriptors), header bytes and the time to send them, body
// bytes per request and, across all requests, the bytes of bodies read and
// not yet answered (503 beyond that budget, before the body is read).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "lumen/serve.h"
#include "serve/http_parse.h"

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
    size_t max_header_bytes = 64 << 10;
    // Connections open at once; more are answered 503 and closed.
    size_t max_connections = 4096;
    // Bytes of request bodies held at once, by requests read and not yet
    // answered; a request whose body would pass it is answered 503 unread.
    size_t body_budget_bytes = size_t{512} << 20;
    // How long a kept-alive connection may wait for its next request.
    int idle_timeout_s = 60;
    // From a request's first byte to the end of its headers.
    int header_timeout_s = 10;
    // To read a body once the headers are in.
    int body_timeout_s = 60;
    // Runs on the I/O thread once a request's headers are read, before its
    // body: a response returned answers the request at once and its body is
    // never read (authentication). The Request has no body yet.
    std::function<std::optional<Response>(const Request&)> on_headers;
    // Both set: every connection speaks TLS (1.2 or later) with this
    // certificate chain and key (PEM text).
    std::string tls_cert_pem;
    std::string tls_key_pem;
  };

  HttpServer(Options options, Handler handler);
  ~HttpServer();  // stops and joins

  // Binds and starts serving; the error names the address on failure.
  absl::Status Start();
  int port() const { return port_; }
  // Connections open now, and body bytes held now (for tests and metrics).
  size_t connections() const;
  size_t body_bytes_held() const;
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

// TLS for serve's client-facing ports (the HTTP proxies and the gRPC
// ingress), from the environment of the processes that run them (set it
// where `lumen start` runs, on every node): LUMEN_SERVE_TLS_CERT and
// LUMEN_SERVE_TLS_KEY, PEM files. Neither set: plaintext. Read once.
struct ServeTls {
  std::string cert_pem;
  std::string key_pem;
  bool enabled() const { return !cert_pem.empty(); }
};
const absl::StatusOr<ServeTls>& ServeTlsFromEnv();

}  // namespace lumen::serve
