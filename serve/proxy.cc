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

Proxy::Proxy(Options options, Dispatcher* dispatcher, ServeMetrics* metrics)
    : options_(options),
      dispatcher_(dispatcher),
      metrics_(metrics),
      server_(
          {.host = options.host, .port = options.port, .threads = options.threads},
          [this](Request r, HttpServer::Reply reply) { Handle(std::move(r), std::move(reply)); }) {}

Response Proxy::FromStatus(const absl::Status& s) {
  Response r = Response::Error(HttpStatusOf(s), std::string(s.message()));
  if (r.status == 503) r.headers["retry-after"] = "1";
  return r;
}

void Proxy::Handle(Request request, HttpServer::Reply reply) {
  if (request.path == "/-/healthz") return reply(Response::Text("ok\n"));
  if (request.path == "/metrics") {
    Response r = Response::Text(metrics_->Text(*dispatcher_));
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
    return reply(Response::Error(
        404, "no application serves " + request.path + " (see /-/routes for the route prefixes)"));
  }
  const std::string app = table->app;
  const std::string deployment = table->ingress;
  request.path = table->PathBelowPrefix(request.path);
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
      return kv.second.done &&
             now - kv.second.at > std::chrono::milliseconds(options_.async_result_ttl_ms);
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
    metrics_->Record(
        app, deployment, "http", r.status,
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
    finish(Response::Error(504, deployment + " did not answer within " + std::to_string(timeout_s) +
                                    " s (request_timeout_s)"));
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
      [finish](absl::StatusOr<Response> r) {
        finish(r.ok() ? std::move(*r) : FromStatus(r.status()));
      },
      timeout_ms);
}

Response Proxy::AsyncLookup(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = results_.find(id);
  if (it == results_.end()) {
    return Response::Error(404, "no async answer " + id + " (unknown, or fetched over " +
                                    std::to_string(options_.async_result_ttl_ms / 1000) +
                                    " s ago)");
  }
  if (!it->second.done) return Response::FromJson({{"id", id}, {"status", "pending"}}, 202);
  return it->second.response;
}

}  // namespace lumen::serve
