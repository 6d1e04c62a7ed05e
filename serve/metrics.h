// ServeMetrics: what the ingresses (HTTP proxy, gRPC) answered, per
// application, deployment and protocol, with the dispatcher's gauges, as
// Prometheus text for /metrics (prometheus-cpp's registry and serializer).
// Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "serve/dispatcher.h"

namespace prometheus {
class Counter;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace lumen::serve {

// The HTTP status for a request the dispatcher could not get answered:
// NOT_FOUND 404, INVALID_ARGUMENT 400, DEADLINE_EXCEEDED 504, UNAVAILABLE
// 503, else 500.
int HttpStatusOf(const absl::Status& s);

class ServeMetrics {
 public:
  ServeMetrics();
  ~ServeMetrics();

  // `code`: the HTTP status answered (gRPC errors as their HTTP equivalents).
  void Record(const std::string& app, const std::string& deployment, const std::string& protocol,
              int code, double seconds);
  std::string Text(const Dispatcher& dispatcher) const;

 private:
  // One application, deployment and protocol: its children of the families.
  struct Series {
    std::map<int, prometheus::Counter*> by_code;
    prometheus::Counter* errors = nullptr;
    prometheus::Histogram* latency = nullptr;
  };
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Counter>* errors_;
  prometheus::Family<prometheus::Histogram>* latency_;
  mutable absl::Mutex mu_;
  std::map<std::tuple<std::string, std::string, std::string>, Series> series_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lumen::serve
