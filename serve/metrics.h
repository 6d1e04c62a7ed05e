// ServeMetrics: what the ingresses (HTTP proxy, gRPC) answered, per
// application, deployment and protocol, rendered with the dispatcher's
// gauges as Prometheus text for /metrics. Thread-safe.
#pragma once

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "serve/dispatcher.h"

namespace lumen::serve {

// The HTTP status for a request the dispatcher could not get answered:
// NOT_FOUND 404, INVALID_ARGUMENT 400, DEADLINE_EXCEEDED 504, UNAVAILABLE
// 503, else 500.
int HttpStatusOf(const absl::Status& s);

class ServeMetrics {
 public:
  // `code`: the HTTP status answered (gRPC errors as their HTTP equivalents).
  void Record(const std::string& app, const std::string& deployment, const std::string& protocol,
              int code, double seconds);
  std::string Text(const Dispatcher& dispatcher) const;

 private:
  static constexpr std::array<double, 14> kBuckets = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  struct Series {
    std::map<int, uint64_t> by_code;
    std::array<uint64_t, kBuckets.size() + 1> buckets{};
    double sum_s = 0;
    uint64_t count = 0;
  };
  mutable absl::Mutex mu_;
  std::map<std::tuple<std::string, std::string, std::string>, Series> series_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lumen::serve
