// The HTTP proxy; see proxy.h.
#include "serve/proxy.h"

#include <atomic>
#include <random>
#include <sstream>

namespace lumen::serve {
namespace {

std::string NewId() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[33];
  snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(rng()),
           static_cast<unsigned long long>(rng()));
  return buf;
}

}  // namespace

Proxy::Proxy(Options options, Dispatcher* dispatcher)
    : options_(options),
      dispatcher_(dispatcher),
      server_({.host = options.host, .port = options.port, .threads = options.threads},
              [this](Request r, HttpServer::Reply reply) { Handle(std::move(r), std::move(reply)); }) {}

Response Proxy::FromStatus(const absl::Status& s) {
  std::string msg(s.message());
  switch (s.code()) {
    case absl::StatusCode::kNotFound:
      return Response::Error(404, msg);
    case absl::StatusCode::kInvalidArgument:
      return Response::Error(400, msg);
    case absl::StatusCode::kDeadlineExceeded:
      return Response::Error(504, msg);
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted: {
      Response r = Response::Error(503, msg);
      r.headers["retry-after"] = "1";
      return r;
    }
    default:
      return Response::Error(500, msg);
  }
}

void Proxy::Handle(Request request, HttpServer::Reply reply) {
  if (request.path == "/-/healthz") return reply(Response::Text("ok\n"));
  if (request.path == "/metrics") {
    Response r = Response::Text(MetricsText());
    r.headers["content-type"] = "text/plain; version=0.0.4";
    return reply(r);
  }
  if (request.path == "/-/routes") {
    Json routes = Json::object();
    for (const auto& t : dispatcher_->Tables()) {
      if (!t.route_prefix.empty()) routes[t.route_prefix] = t.app;
    }
    return reply(Response::FromJson(routes));
  }
  if (request.path.rfind("/-/results/", 0) == 0) {
    return reply(AsyncLookup(request.path.substr(11)));
  }
  std::optional<RouteTable> table = dispatcher_->Match(request.path);
  if (!table) {
    return reply(Response::Error(404, "no application serves " + request.path +
                                          " (see /-/routes for the route prefixes)"));
  }
  const std::string app = table->app;
  const std::string deployment = table->ingress;
  if (table->route_prefix != "/") request.path = request.path.substr(table->route_prefix.size());
  if (request.path.empty()) request.path = "/";
  double timeout_s = 60;
  if (auto d = table->deployments.find(deployment); d != table->deployments.end()) {
    timeout_s = d->second.request_timeout_s;
  }
  auto start = std::chrono::steady_clock::now();
  // Answered once, by the deployment or the timeout; the other is dropped
  // (and the timer cancelled, so it does not hold the connection).
  struct Once {
    std::atomic<bool> answered{false};
    std::mutex mu;
    std::function<void()> cancel_timer;
  };
  auto once = std::make_shared<Once>();
  bool async = request.Header("prefer").find("respond-async") != std::string::npos;
  std::string id;
  if (async) {
    id = NewId();
    std::lock_guard<std::mutex> lock(mu_);
    auto now = std::chrono::steady_clock::now();
    std::erase_if(results_, [&](const auto& kv) {
      return kv.second.done && now - kv.second.at > std::chrono::milliseconds(options_.async_result_ttl_ms);
    });
    if (results_.size() >= options_.max_async_results) {
      Response r = Response::Error(503, "too many async answers are waiting to be fetched");
      r.headers["retry-after"] = "5";
      return reply(r);
    }
    results_[id].at = now;
    Response accepted = Response::FromJson({{"id", id}, {"status_url", "/-/results/" + id}}, 202);
    accepted.headers["location"] = "/-/results/" + id;
    reply(accepted);
  }
  auto finish = [this, app, deployment, start, once, reply, id](Response r) {
    if (once->answered.exchange(true)) return;
    {
      std::lock_guard<std::mutex> lock(once->mu);
      if (once->cancel_timer) once->cancel_timer();
    }
    Record(app, deployment, r.status,
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (id.empty()) {
      reply(std::move(r));
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    auto it = results_.find(id);
    if (it == results_.end()) return;
    it->second.done = true;
    it->second.response = std::move(r);
    it->second.at = std::chrono::steady_clock::now();
  };
  auto timeout_ms = static_cast<int64_t>(timeout_s * 1000);
  auto cancel = server_.After(timeout_ms, [finish, deployment, timeout_s] {
    finish(Response::Error(504, deployment + " did not answer within " +
                                    std::to_string(timeout_s) + " s (request_timeout_s)"));
  });
  {
    std::lock_guard<std::mutex> lock(once->mu);
    if (once->answered) {
      cancel();  // answered already
    } else {
      once->cancel_timer = std::move(cancel);
    }
  }
  dispatcher_->Send(
      app, deployment, std::move(request),
      [finish](absl::StatusOr<Response> r) { finish(r.ok() ? std::move(*r) : FromStatus(r.status())); },
      timeout_ms);
}

Response Proxy::AsyncLookup(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = results_.find(id);
  if (it == results_.end()) {
    return Response::Error(404, "no async answer " + id + " (unknown, or fetched over " +
                                    std::to_string(options_.async_result_ttl_ms / 1000) + " s ago)");
  }
  if (!it->second.done) return Response::FromJson({{"id", id}, {"status", "pending"}}, 202);
  return it->second.response;
}

void Proxy::Record(const std::string& app, const std::string& deployment, int code, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = series_[{app, deployment}];
  s.by_code[code]++;
  size_t b = 0;
  while (b < kBuckets.size() && seconds > kBuckets[b]) ++b;
  s.buckets[b]++;
  s.sum_s += seconds;
  s.count++;
}

std::string Proxy::MetricsText() const {
  std::ostringstream out;
  auto labels = [](const std::string& app, const std::string& dep) {
    return "app=\"" + app + "\",deployment=\"" + dep + "\"";
  };
  std::lock_guard<std::mutex> lock(mu_);
  out << "# HELP lumen_serve_requests_total Requests answered by the proxy, by HTTP status.\n"
      << "# TYPE lumen_serve_requests_total counter\n";
  for (const auto& [key, s] : series_) {
    for (const auto& [code, n] : s.by_code) {
      out << "lumen_serve_requests_total{" << labels(key.first, key.second) << ",code=\"" << code
          << "\"} " << n << "\n";
    }
  }
  out << "# HELP lumen_serve_errors_total Requests answered with a 5xx status.\n"
      << "# TYPE lumen_serve_errors_total counter\n";
  for (const auto& [key, s] : series_) {
    uint64_t errors = 0;
    for (const auto& [code, n] : s.by_code) errors += code >= 500 ? n : 0;
    out << "lumen_serve_errors_total{" << labels(key.first, key.second) << "} " << errors << "\n";
  }
  out << "# HELP lumen_serve_request_latency_seconds Time from request to answer at the proxy.\n"
      << "# TYPE lumen_serve_request_latency_seconds histogram\n";
  for (const auto& [key, s] : series_) {
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= kBuckets.size(); ++b) {
      cumulative += s.buckets[b];
      std::string le = b < kBuckets.size() ? std::to_string(kBuckets[b]) : "+Inf";
      out << "lumen_serve_request_latency_seconds_bucket{" << labels(key.first, key.second)
          << ",le=\"" << le << "\"} " << cumulative << "\n";
    }
    out << "lumen_serve_request_latency_seconds_sum{" << labels(key.first, key.second) << "} "
        << s.sum_s << "\n";
    out << "lumen_serve_request_latency_seconds_count{" << labels(key.first, key.second) << "} "
        << s.count << "\n";
  }
  out << "# HELP lumen_serve_queued_requests Requests waiting for a free replica slot.\n"
      << "# TYPE lumen_serve_queued_requests gauge\n";
  auto counters = dispatcher_->Counters();
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
