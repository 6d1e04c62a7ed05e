// Serving metrics; see metrics.h.
#include "serve/metrics.h"

#include <sstream>

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

void ServeMetrics::Record(const std::string& app, const std::string& deployment,
                          const std::string& protocol, int code, double seconds) {
  absl::MutexLock lock(&mu_);
  Series& s = series_[{app, deployment, protocol}];
  s.by_code[code]++;
  size_t b = 0;
  while (b < kBuckets.size() && seconds > kBuckets[b]) ++b;
  s.buckets[b]++;
  s.sum_s += seconds;
  s.count++;
}

std::string ServeMetrics::Text(const Dispatcher& dispatcher) const {
  std::ostringstream out;
  auto header = [&](const char* name, const char* type, const char* help) {
    out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  };
  auto labels = [](const std::string& app, const std::string& deployment) {
    return "app=\"" + app + "\",deployment=\"" + deployment + "\"";
  };
  absl::MutexLock lock(&mu_);
  std::map<std::tuple<std::string, std::string, std::string>, std::string> keys;
  for (const auto& [key, s] : series_) {
    const auto& [app, deployment, protocol] = key;
    keys[key] = labels(app, deployment) + ",protocol=\"" + protocol + "\"";
  }
  header("lumen_serve_requests_total", "counter", "Requests answered, by HTTP status.");
  for (const auto& [key, s] : series_) {
    for (const auto& [code, n] : s.by_code) {
      out << "lumen_serve_requests_total{" << keys[key] << ",code=\"" << code << "\"} " << n
          << "\n";
    }
  }
  header("lumen_serve_errors_total", "counter", "Requests answered with a 5xx status.");
  for (const auto& [key, s] : series_) {
    uint64_t errors = 0;
    for (const auto& [code, n] : s.by_code) errors += code >= 500 ? n : 0;
    out << "lumen_serve_errors_total{" << keys[key] << "} " << errors << "\n";
  }
  header("lumen_serve_request_latency_seconds", "histogram",
         "Time from request to answer at the ingress.");
  for (const auto& [key, s] : series_) {
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= kBuckets.size(); ++b) {
      cumulative += s.buckets[b];
      std::string le = b < kBuckets.size() ? std::to_string(kBuckets[b]) : "+Inf";
      out << "lumen_serve_request_latency_seconds_bucket{" << keys[key] << ",le=\"" << le << "\"} "
          << cumulative << "\n";
    }
    out << "lumen_serve_request_latency_seconds_sum{" << keys[key] << "} " << s.sum_s << "\n";
    out << "lumen_serve_request_latency_seconds_count{" << keys[key] << "} " << s.count << "\n";
  }
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
    header(g.name, "gauge", g.help);
    for (const auto& [key, c] : counters) {
      out << g.name << "{" << labels(key.first, key.second) << "} " << g.value(c) << "\n";
    }
  }
  return out.str();
}

}  // namespace lumen::serve
