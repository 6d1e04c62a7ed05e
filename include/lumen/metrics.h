// Metrics from your own code, exported to Prometheus (as Ray's
// ray.util.metrics and its C++ API's ray::Counter/Gauge/Histogram).
//
//   lumen::Counter requests("app_requests_total", "Requests handled", "requests",
//                           {"route"});
//   requests.Inc(1, {{"route", "/predict"}});
//   lumen::Histogram latency("app_latency_seconds", "Handling time", "seconds",
//                            {0.001, 0.01, 0.1, 1}, {"route"});
//   latency.Observe(0.004, {{"route", "/predict"}});
//
// Use them in tasks, actors, deployments or the driver: each process sends
// its figures to its node manager every two seconds, and the node manager's
// /metrics shows them with node_id and worker_id labels (`lumen metrics
// targets` lists the endpoints to scrape). Names follow Prometheus's rules
// ([a-zA-Z_:][a-zA-Z0-9_:]*), tag keys too ([a-zA-Z_][a-zA-Z0-9_]*); a bad
// name, a tag key not declared, or a negative Inc throws
// std::invalid_argument saying which. Metrics of the same name share one
// series set, so declare them where convenient (a static, a member).
// Thread-safe; cheap to copy.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace lumen {

using MetricTags = std::map<std::string, std::string>;

namespace internal {
struct MetricImpl;
}

class Counter {
 public:
  Counter(const std::string& name, const std::string& description, const std::string& unit = "",
          const std::vector<std::string>& tag_keys = {});
  // Adds `value` (>= 0) to the series of `tags`.
  void Inc(double value = 1.0, const MetricTags& tags = {});

 private:
  std::shared_ptr<internal::MetricImpl> impl_;
};

class Gauge {
 public:
  Gauge(const std::string& name, const std::string& description, const std::string& unit = "",
        const std::vector<std::string>& tag_keys = {});
  void Set(double value, const MetricTags& tags = {});

 private:
  std::shared_ptr<internal::MetricImpl> impl_;
};

class Histogram {
 public:
  // `boundaries`: the buckets' upper bounds, increasing (+Inf is added).
  Histogram(const std::string& name, const std::string& description, const std::string& unit,
            const std::vector<double>& boundaries, const std::vector<std::string>& tag_keys = {});
  void Observe(double value, const MetricTags& tags = {});

 private:
  std::shared_ptr<internal::MetricImpl> impl_;
};

}  // namespace lumen
