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
  std::lock_guard<std::mutex> lock(mu_);
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
  auto labels = [](const std::string& app, const std::string& dep) {
    return "app=\"" + app + "\",deployment=\"" + dep + "\"";
  };
  std::lock_guard<std::mutex> lock(mu_);
  out << "# HELP lumen_serve_requests_total Requests answered by the proxy, by HTTP status.\n"
      << "# TYPE lumen_serve_requests_total counter\n";
  for (const auto& [key, s] : series_) {
    for (const auto& [code, n] : s.by_code) {
      out << "lumen_serve_requests_total{" << labels(std::get<0>(key), std::get<1>(key))
          << ",protocol=\"" << std::get<2>(key) << "\",code=\"" << code << "\"} " << n << "\n";
    }
  }
  out << "# HELP lumen_serve_errors_total Requests answered with a 5xx status.\n"
      << "# TYPE lumen_serve_errors_total counter\n";
  for (const auto& [key, s] : series_) {
    uint64_t errors = 0;
    for (const auto& [code, n] : s.by_code) errors += code >= 500 ? n : 0;
    out << "lumen_serve_errors_total{" << labels(std::get<0>(key), std::get<1>(key)) + ",protocol=\"" + std::get<2>(key) + "\"" << "} " << errors << "\n";
  }
  out << "# HELP lumen_serve_request_latency_seconds Time from request to answer at the proxy.\n"
      << "# TYPE lumen_serve_request_latency_seconds histogram\n";
  for (const auto& [key, s] : series_) {
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= kBuckets.size(); ++b) {
      cumulative += s.buckets[b];
      std::string le = b < kBuckets.size() ? std::to_string(kBuckets[b]) : "+Inf";
      out << "lumen_serve_request_latency_seconds_bucket{" << labels(std::get<0>(key), std::get<1>(key)) + ",protocol=\"" + std::get<2>(key) + "\""
          << ",le=\"" << le << "\"} " << cumulative << "\n";
    }
    out << "lumen_serve_request_latency_seconds_sum{" << labels(std::get<0>(key), std::get<1>(key)) + ",protocol=\"" + std::get<2>(key) + "\"" << "} "
        << s.sum_s << "\n";
    out << "lumen_serve_request_latency_seconds_count{" << labels(std::get<0>(key), std::get<1>(key)) + ",protocol=\"" + std::get<2>(key) + "\"" << "} "
        << s.count << "\n";
  }
  out << "# HELP lumen_serve_queued_requests Requests waiting for a free replica slot.\n"
      << "# TYPE lumen_serve_queued_requests gauge\n";
  auto counters = dispatcher.Counters();
  for (const auto& [key, c] : counters) {
    size_t slash = key.find('/');
    out << "lumen_serve_queued_requests{" << labels(key.substr(0, slash), key.substr(slash + 1))
        << "} " << c.queued << "\n";
  }
  out << "# HELP lumen_serve_ongoing_requests Requests sent to replicas and not yet answered.\n"
      << "# TYPE lumen_serve_ongoing_requests gauge\n";
  for (const auto& [key, c] : counters) {
    size_t slash = key.find('/');
    out << "lumen_serve_ongoing_requests{" << labels(key.substr(0, slash), key.substr(slash + 1))
        << "} " << c.ongoing << "\n";
  }
  out << "# HELP lumen_serve_replicas Running replicas the proxy routes to.\n"
      << "# TYPE lumen_serve_replicas gauge\n";
  for (const auto& [key, c] : counters) {
    size_t slash = key.find('/');
    out << "lumen_serve_replicas{" << labels(key.substr(0, slash), key.substr(slash + 1)) << "} "
        << c.replicas << "\n";
  }
  return out.str();
}

}  // namespace lumen::serve
