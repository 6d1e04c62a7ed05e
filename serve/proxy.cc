// The HTTP proxy; see proxy.h.
#include "serve/proxy.h"

#include <sys/random.h>

#include "common/file_util.h"

namespace lumen::serve {
namespace {

// 128 bits from the OS's random source, as hex; "" if it has none to give.
std::string NewId() {
  unsigned char bytes[16];
  if (getrandom(bytes, sizeof(bytes), 0) != static_cast<ssize_t>(sizeof(bytes))) return "";
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

std::string CallerOf(const Request& request) { return Sha256Hex(request.Header("authorization")); }

}  // namespace

Proxy::Proxy(Options options, Dispatcher* dispatcher, ServeMetrics* metrics)
    : options_(options),
      dispatcher_(dispatcher),
      metrics_(metrics),
      v2_(dispatcher, metrics),
      server_(ServerOptions(options), [this](Request r, HttpServer::Reply reply) {
        Handle(std::move(r), std::move(reply));
      }) {}

HttpServer::Options Proxy::ServerOptions(const Options& options) {
  HttpServer::Options o{.host = options.host, .port = options.port, .threads = options.threads};
  const auto& tls = ServeTlsFromEnv();
  if (tls.ok()) {
    o.tls_cert_pem = tls->cert_pem;
    o.tls_key_pem = tls->key_pem;
  }
  return o;
}

absl::Status Proxy::Start() {
  if (const auto& tls = ServeTlsFromEnv(); !tls.ok()) return tls.status();
  return server_.Start();
}

Response Proxy::FromStatus(const absl::Status& s) {
  Response r = Response::Error(HttpStatusOf(s), std::string(s.message()));
  if (r.status == 503) r.headers["retry-after"] = "1";
  return r;
}

void Proxy::Handle(Request request, HttpServer::Reply reply) {
  if (request.path == "/-/healthz") return reply(Response::Text("ok\n"));
  if (request.path == "/metrics") {
    Response r = Response::Text(metrics_->Text(*dispatcher_) + V2Ingress::ModelMetricsText());
    r.headers["content-type"] = "text/plain; version=0.0.4";
    return reply(r);
  }
  if (request.path == "/-/routes") {
    Json routes = Json::object();
    for (const auto& t : dispatcher_->Apps()) {
      if (!t->route_prefix.empty()) routes[t->route_prefix] = t->app;
    }
    return reply(Response::FromJson(routes));
  }
  if (V2Ingress::Owns(request.path)) return v2_.HandleHttp(std::move(request), std::move(reply));
  if (request.path.rfind("/-/results/", 0) == 0) {
    return reply(AsyncLookup(request.path.substr(11), CallerOf(request)));
  }
  std::shared_ptr<const AppRoute> route = dispatcher_->Match(request.path);
  if (!route) {
    return reply(Response::Error(
        404, "no application serves " + request.path + " (see /-/routes for the route prefixes)"));
  }
  const std::string app = route->app;
  const std::string deployment = route->ingress;
  request.path = route->PathBelowPrefix(request.path);
  auto start = std::chrono::steady_clock::now();
  bool async = request.Header("prefer").find("respond-async") != std::string::npos;
  std::string id;
  if (async) {
    id = NewId();
    if (id.empty()) return reply(Response::Error(503, "no random bytes for an async id; retry"));
    absl::MutexLock lock(&mu_);
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
    AsyncResult& slot = results_[id];
    slot.at = now;
    slot.caller = CallerOf(request);
    Response accepted = Response::FromJson({{"id", id}, {"status_url", "/-/results/" + id}}, 202);
    accepted.headers["location"] = "/-/results/" + id;
    reply(accepted);
  }
  // The dispatcher answers exactly once: with the replica's answer, or
  // 504 past the deployment's request_timeout_s, or why it could not.
  dispatcher_->Send(
      app, deployment, std::move(request),
      [this, app, deployment, start, reply, id](absl::StatusOr<Response> answer) {
        Response r = answer.ok() ? std::move(*answer) : FromStatus(answer.status());
        metrics_->Record(
            app, deployment, "http", r.status,
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        if (id.empty()) return reply(std::move(r));
        absl::MutexLock lock(&mu_);
        auto it = results_.find(id);
        if (it == results_.end()) return;
        it->second.done = true;
        it->second.response = std::move(r);
        it->second.at = std::chrono::steady_clock::now();
      });
}

Response Proxy::AsyncLookup(const std::string& id, const std::string& caller) {
  absl::MutexLock lock(&mu_);
  auto it = results_.find(id);
  if (it == results_.end() || it->second.caller != caller) {
    return Response::Error(404, "no async answer " + id +
                                    " for this caller (unknown, fetched over " +
                                    std::to_string(options_.async_result_ttl_ms / 1000) +
                                    " s ago, or asked for with another Authorization header)");
  }
  if (!it->second.done) return Response::FromJson({{"id", id}, {"status", "pending"}}, 202);
  return it->second.response;
}

}  // namespace lumen::serve
