// Proxy: the HTTP ingress of the serve runtime. Routes each request by the
// longest matching route prefix to its application's ingress deployment
// through the dispatcher, and maps failures to HTTP: no such route 404,
// queue full 503 with Retry-After, past the timeout 504, a malformed
// request 400 (HttpServer). A request with "Prefer: respond-async" is
// answered 202 with an id at once; its answer is fetched later from
// /-/results/ID. Also serves /-/healthz, /-/routes and /metrics
// (Prometheus text: requests, errors and latency per deployment, queue
// lengths, replica counts).
#pragma once

#include <array>
#include <chrono>
#include <map>
#include <mutex>
#include <string>

#include "serve/dispatcher.h"
#include "serve/http_server.h"

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
  Proxy(Options options, Dispatcher* dispatcher);

  absl::Status Start() { return server_.Start(); }
  // No request is handled after this returns (see HttpServer::Stop).
  void Stop() { server_.Stop(); }
  int port() const { return server_.port(); }
  std::string MetricsText() const;

 private:
  static constexpr std::array<double, 14> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                      0.1,    0.25,  0.5,    1,     2.5,  5,    10};
  struct Series {
    std::map<int, uint64_t> by_code;
    std::array<uint64_t, kBuckets.size() + 1> buckets{};
    double sum_s = 0;
    uint64_t count = 0;
  };
  struct AsyncResult {
    bool done = false;
    Response response;
    std::chrono::steady_clock::time_point at;
  };

  void Handle(Request request, HttpServer::Reply reply);
  void Record(const std::string& app, const std::string& deployment, int code, double seconds);
  Response AsyncLookup(const std::string& id);
  static Response FromStatus(const absl::Status& s);

  Options options_;
  Dispatcher* dispatcher_;
  HttpServer server_;
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, Series> series_;
  std::map<std::string, AsyncResult> results_;
};

}  // namespace lumen::serve
