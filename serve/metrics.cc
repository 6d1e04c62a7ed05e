// Serving metrics; see metrics.h.
#include "serve/metrics.h"

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace lumen::serve {

int HttpStatusOf(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
      return 503;
    default:
      return 500;
  }
}

ServeMetrics::ServeMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_(&prometheus::BuildCounter()
                     .Name("lumen_serve_requests_total")
                     .Help("Requests answered, by HTTP status.")
                     .Register(*registry_)),
      errors_(&prometheus::BuildCounter()
                   .Name("lumen_serve_errors_total")
                   .Help("Requests answered with a 5xx status.")
                   .Register(*registry_)),
      latency_(&prometheus::BuildHistogram()
                    .Name("lumen_serve_request_latency_seconds")
                    .Help("Time from a request's arrival at the ingress to its answer.")
                    .Register(*registry_)) {}

ServeMetrics::~ServeMetrics() = default;

void ServeMetrics::Record(const std::string& app, const std::string& deployment,
                          const std::string& protocol, int code, double seconds) {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  prometheus::Counter* counter;
  prometheus::Counter* errors;
  prometheus::Histogram* latency;
  {
    absl::MutexLock lock(&mu_);
    Series& s = series_[{app, deployment, protocol}];
    if (s.latency == nullptr) {
      prometheus::Labels labels = {
          {"app", app}, {"deployment", deployment}, {"protocol", protocol}};
      s.errors = &errors_->Add(labels);
      s.latency = &latency_->Add(labels, kBuckets);
    }
    prometheus::Counter*& c = s.by_code[code];
    if (c == nullptr) {
      c = &requests_->Add({{"app", app},
                           {"deployment", deployment},
                           {"protocol", protocol},
                           {"code", std::to_string(code)}});
    }
    counter = c;
    errors = s.errors;
    latency = s.latency;
  }
  counter->Increment();
  if (code >= 500) errors->Increment();
  latency->Observe(seconds);
}

std::string ServeMetrics::Text(const Dispatcher& dispatcher) const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  using Counters = Dispatcher::Counters;
  struct Gauge {
    const char* name;
    const char* help;
    double (*value)(const Counters&);
  };
  const Gauge gauges[] = {
      {"lumen_serve_queued_requests", "Requests waiting for a free replica slot.",
       [](const Counters& c) { return static_cast<double>(c.queued); }},
      {"lumen_serve_ongoing_requests", "Requests sent to replicas and not yet answered.",
       [](const Counters& c) { return static_cast<double>(c.ongoing); }},
      {"lumen_serve_replicas", "Running replicas the ingress routes to.",
       [](const Counters& c) { return static_cast<double>(c.replicas); }},
  };
  auto counters = dispatcher.CountersByDeployment();
  for (const Gauge& g : gauges) {
    prometheus::MetricFamily f{g.name, g.help, prometheus::MetricType::Gauge, {}};
    for (const auto& [key, c] : counters) {
      prometheus::ClientMetric m;
      m.label = {{"app", key.first}, {"deployment", key.second}};
      m.gauge.value = g.value(c);
      f.metric.push_back(std::move(m));
    }
    families.push_back(std::move(f));
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace lumen::serve
