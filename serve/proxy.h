// Proxy: the HTTP ingress of the serve runtime. Routes each request by the
// longest matching route prefix to its application's ingress deployment
// through the dispatcher, and maps failures to HTTP: no such route 404,
// queue full 503 with Retry-After, past the timeout 504, a malformed
// request 400 (HttpServer). The dispatcher is the one place that answers a
// request (its timeout included). A request with "Prefer: respond-async" is
// answered 202 with an id at once (128 bits from the OS's random source);
// its answer is fetched later from /-/results/ID, by a caller presenting
// the same Authorization header as the request (else 404). KServe v2 (/v2/...) is
// V2Ingress's. Also serves /-/healthz, /-/routes and
// /metrics (Prometheus text: requests, errors and latency per deployment, queue lengths, replica
// counts).
#pragma once

#include <array>
#include <chrono>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

#include "serve/dispatcher.h"
#include "serve/http_server.h"
#include "serve/metrics.h"
#include "serve/v2_ingress.h"

namespace lumen::serve {

class Proxy {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 8000;
    int threads = 1;
    size_t max_async_results = 10'000;
    int64_t async_result_ttl_ms = 600'000;
  };
  Proxy(Options options, Dispatcher* dispatcher, ServeMetrics* metrics);

  // Binds; with LUMEN_SERVE_TLS_CERT and LUMEN_SERVE_TLS_KEY set, speaks
  // TLS (an error names a file that is unusable).
  absl::Status Start();
  // No request is handled after this returns (see HttpServer::Stop).
  void Stop() { server_.Stop(); }
  int port() const { return server_.port(); }

 private:
  struct AsyncResult {
    bool done = false;
    Response response;
    std::chrono::steady_clock::time_point at;
    std::string caller;  // digest of the request's Authorization header
  };

  void Handle(Request request, HttpServer::Reply reply);
  Response AsyncLookup(const std::string& id, const std::string& caller);
  static Response FromStatus(const absl::Status& s);
  static HttpServer::Options ServerOptions(const Options& options);

  Options options_;
  Dispatcher* dispatcher_;
  ServeMetrics* metrics_;
  V2Ingress v2_;
  HttpServer server_;
  mutable absl::Mutex mu_;
  std::map<std::string, AsyncResult> results_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lumen::serve
