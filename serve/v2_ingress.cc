// The v2 protocol at the proxies; see v2_ingress.h.
#include "serve/v2_ingress.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/file_util.h"
#include "lumen/actor.h"
#include "lumen/api.h"
#include "proto/grpc_service.grpc.pb.h"
#include "serve/app_controller.h"
#include "serve/json_util.h"
#include "serve/manager.h"
#include "serve/route_table.h"

namespace lumen::serve {
namespace {

using Clock = std::chrono::steady_clock;

// Stale metrics (a replica gone without cleaning up) are left out after this.
constexpr int64_t kMetricsMaxAgeMs = 30'000;

struct ModelState {
  std::string state;   // READY, LOADING, UNAVAILABLE
  std::string reason;  // why not READY
};

ModelState StateOf(const std::string& model, const AppRoute::Deployment& d) {
  if (d.replicas > 0) return {"READY", ""};
  if (!d.unavailable.empty()) return {"UNAVAILABLE", d.unavailable};
  return {"LOADING", "its replicas are starting"};
}

// Where model `name` is served, or the error to answer.
struct Target {
  std::string app, deployment;
  double timeout_s = 60;
};
absl::StatusOr<Target> Resolve(const Dispatcher& dispatcher, const std::string& name) {
  auto found = dispatcher.FindModel(name);
  if (!found) {
    return absl::NotFoundError("unknown model '" + name +
                               "' (POST /v2/repository/index lists the models)");
  }
  const auto& d = found->first->deployments.at(found->second);
  ModelState s = StateOf(name, d);
  if (s.state != "READY") {
    return absl::UnavailableError("model '" + name + "' is " + s.state + ": " + s.reason);
  }
  return Target{found->first->app, found->second, d.request_timeout_s};
}

Json Index(const Dispatcher& dispatcher, bool ready_only) {
  Json out = Json::array();
  for (const auto& app : dispatcher.Apps()) {
    for (const auto& [name, d] : app->deployments) {
      for (const auto& model : d.models) {
        ModelState s = StateOf(model, d);
        if (ready_only && s.state != "READY") continue;
        Json row = {{"name", model}, {"state", s.state}};
        if (!s.reason.empty()) row["reason"] = s.reason;
        out.push_back(std::move(row));
      }
    }
  }
  return out;
}

bool AllReady(const Dispatcher& dispatcher) {
  for (const auto& app : dispatcher.Apps()) {
    for (const auto& [name, d] : app->deployments) {
      if (!d.models.empty() && d.replicas == 0) return false;
    }
  }
  return true;
}

Json ServerMetadata() {
  return {{"name", "lumen"},
          {"version", "0.1.0"},
          {"extensions", {"binary_tensor_data", "model_repository"}}};
}

Response FromStatus(const absl::Status& s) {
  Response r = Response::Error(HttpStatusOf(s), std::string(s.message()));
  if (r.status == 503) r.headers["retry-after"] = "1";
  return r;
}

grpc::Status GrpcFromHttp(int status, const std::string& body) {
  Json j = ParseJson(body);
  std::string message = j.is_object() && j.contains("error") && j["error"].is_string()
                            ? j["error"].get<std::string>()
                            : body;
  grpc::StatusCode code = status == 400   ? grpc::StatusCode::INVALID_ARGUMENT
                          : status == 404 ? grpc::StatusCode::NOT_FOUND
                          : status == 503 ? grpc::StatusCode::UNAVAILABLE
                          : status == 504 ? grpc::StatusCode::DEADLINE_EXCEEDED
                          : status == 429 ? grpc::StatusCode::RESOURCE_EXHAUSTED
                                          : grpc::StatusCode::INTERNAL;
  return grpc::Status(code, message);
}

grpc::Status GrpcFromStatus(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(static_cast<int>(s.code())),
                      std::string(s.message()));
}

std::string ModelPath(const std::string& name, const std::string& version,
                      const std::string& action) {
  std::string p = "/v2/models/" + name;
  if (!version.empty()) p += "/versions/" + version;
  if (!action.empty()) p += "/" + action;
  return p;
}

// What a load or unload request may carry. Triton's load can name a config
// or files to load in place of the repository's: lumen loads only what an
// authenticated deploy put in the cluster.
absl::Status CheckLoadParameters(const std::vector<std::string>& keys) {
  for (const auto& k : keys) {
    if (k == "config" || k.rfind("file:", 0) == 0) {
      return absl::InvalidArgumentError(
          "load parameter '" + k +
          "' is not taken: models load from the repository deployed with the serve config "
          "(lumen serve deploy), not from files in a request");
    }
  }
  return absl::OkStatus();
}

}  // namespace

// Load and unload change what the cluster serves, so they take the cluster
// token ("Authorization: Bearer TOKEN" or x-lumen-token). The serve manager
// scales the model's deployment to zero (unload) or back (load); the answer
// comes once the proxies' routing says the model is ready (load) or no
// longer served (unload), as Triton answers when the model has loaded.
class V2Ingress::Control {
 public:
  using Done = std::function<void(int status, const std::string& error)>;
  explicit Control(Dispatcher* dispatcher) : dispatcher_(dispatcher) {
    shared_->dispatcher = dispatcher;
  }
  ~Control() {
    // Calls under way hold `shared_`; they find no dispatcher from here on.
    absl::MutexLock lock(&shared_->mu);
    shared_->dispatcher = nullptr;
  }

  // Why a caller presenting `token` may not load or unload: {status,
  // message}, or {0, ""} when it may. Checked before anything else of the
  // request is read.
  static std::pair<int, std::string> Refusal(const std::string& token) {
    auto* rt = lumen::internal::CurrentRuntime();
    if (rt == nullptr) return {503, "this proxy is not connected to a cluster"};
    if (token.empty() || !SameSecret(token, rt->ClusterToken())) {
      return {401, std::string(token.empty() ? "" : "wrong cluster token: ") +
                       "load and unload change what the cluster serves; send the cluster "
                       "token as 'Authorization: Bearer TOKEN'"};
    }
    return {0, ""};
  }

  void Run(const std::string& model, bool load, const std::string& token, Done done) {
    if (auto [status, why] = Refusal(token); status != 0) return done(status, why);
    if (!dispatcher_->FindModel(model)) {
      return done(404, "unknown model '" + model + "' (POST /v2/repository/index lists them)");
    }
    if (shared_->running.fetch_add(1) >= kMaxAtOnce) {
      shared_->running--;
      return done(503, "too many load and unload calls at once; try again");
    }
    std::thread([shared = shared_, model, load, token, done] {
      auto [status, error] = Apply(shared.get(), model, load, token);
      shared->running--;
      done(status, error);
    }).detach();
  }

 private:
  struct Shared {
    std::atomic<int> running{0};
    absl::Mutex mu;
    Dispatcher* dispatcher ABSL_GUARDED_BY(mu) = nullptr;  // null once the proxy goes
  };
  static constexpr int kMaxAtOnce = 4;

  static std::pair<int, std::string> Apply(Shared* shared, const std::string& model, bool load,
                                           const std::string& token) {
    auto manager = GetActor<ServeManager>(kManagerActorName, kServeNamespace);
    if (!manager.ok()) return {503, "the serve manager is away: " + manager.status().ToString()};
    auto answer = Get(
        manager->Task(&ServeManager::Admin)
            .Remote(std::string("POST"),
                    "/api/serve/models/" + model + (load ? "/load" : "/unload"), "Bearer " + token),
        35'000);
    if (!answer.ok()) {
      return {503, "the serve manager did not answer: " + answer.status().ToString()};
    }
    Json a = ParseJson(*answer);
    int status = a.is_object() ? a.value("status", 500) : 500;
    if (status != 200) {
      Json body = ParseJson(a.is_object() ? a.value("body", "") : "");
      return {status, body.is_object() ? body.value("error", std::string("failed"))
                                       : std::string("failed")};
    }
    auto deadline = Clock::now() + std::chrono::seconds(load ? 120 : 60);
    ModelState s{"UNKNOWN", "the proxy is stopping"};
    while (true) {
      {
        absl::MutexLock lock(&shared->mu);
        if (shared->dispatcher == nullptr) break;
        auto found = shared->dispatcher->FindModel(model);
        if (!found) return {404, "model '" + model + "' is no longer deployed"};
        s = StateOf(model, found->first->deployments.at(found->second));
      }
      if ((s.state == "READY") == load) return {200, ""};
      if (Clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the routing tables' pace
    }
    return {503, "model '" + model + "' is " + s.state + ": " + s.reason};
  }

  Dispatcher* dispatcher_;
  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
};

bool V2Ingress::Owns(const std::string& path) {
  return path == "/v2" || path.rfind("/v2/", 0) == 0;
}

void V2Ingress::HandleHttp(Request request, HttpServer::Reply reply) {
  const std::string& path = request.path;
  if (path == "/v2" || path == "/v2/") return reply(Response::FromJson(ServerMetadata()));
  if (path == "/v2/health/live") return reply(Response::FromJson({{"live", true}}));
  if (path == "/v2/health/ready") {
    bool ready = AllReady(*dispatcher_);
    return reply(Response::FromJson({{"ready", ready}}, ready ? 200 : 503));
  }
  std::vector<std::string> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
  if (parts.size() >= 2 && parts[1] == "repository") {
    if (request.method != "POST") {
      return reply(Response::Error(405, "the repository API takes POST"));
    }
    if (parts.size() == 3 && parts[2] == "index") {
      Json body = ParseJson(request.body);
      bool ready = body.is_object() && body.value("ready", false);
      return reply(Response::FromJson(Index(*dispatcher_, ready)));
    }
    if (parts.size() == 5 && parts[2] == "models" && (parts[4] == "load" || parts[4] == "unload")) {
      std::string token =
          PresentedToken(request.Header("x-lumen-token"), request.Header("authorization"));
      if (auto [status, why] = Control::Refusal(token); status != 0) {
        return reply(Response::Error(status, why));
      }
      Json body = request.body.empty() ? Json::object() : ParseJson(request.body);
      if (!body.is_object()) return reply(Response::Error(400, "expected a JSON object body"));
      std::vector<std::string> keys;
      if (body.contains("parameters") && body["parameters"].is_object()) {
        for (const auto& [k, v] : body["parameters"].items()) keys.push_back(k);
      }
      if (absl::Status s = CheckLoadParameters(keys); !s.ok()) {
        return reply(Response::Error(400, std::string(s.message())));
      }
      return control_->Run(parts[3], parts[4] == "load", token,
                           [reply](int status, const std::string& error) {
                             reply(status == 200 ? Response::FromJson(Json::object())
                                                 : Response::Error(status, error));
                           });
    }
    return reply(Response::Error(404,
                                 "the repository API has POST /v2/repository/index and "
                                 "/v2/repository/models/NAME/load|unload"));
  }
  if (parts.size() < 3 || parts[1] != "models") {
    return reply(Response::Error(404, "no v2 endpoint " + path +
                                          " (see /v2, /v2/health/*, /v2/models/NAME[/versions/"
                                          "V][/ready|/infer], /v2/repository/index)"));
  }
  auto target = Resolve(*dispatcher_, parts[2]);
  if (!target.ok()) return reply(FromStatus(target.status()));
  auto start = Clock::now();
  request.headers["x-lumen-model"] = parts[2];  // multiplexed: to a replica that has it
  dispatcher_->Send(target->app, target->deployment, std::move(request),
                    [this, t = *target, start, reply](absl::StatusOr<Response> answer) {
                      Response r = answer.ok() ? std::move(*answer) : FromStatus(answer.status());
                      metrics_->Record(t.app, t.deployment, "http", r.status,
                                       std::chrono::duration<double>(Clock::now() - start).count());
                      reply(std::move(r));
                    });
}

class V2Ingress::GrpcService final : public inference::GRPCInferenceService::CallbackService {
 public:
  GrpcService(Dispatcher* dispatcher, ServeMetrics* metrics, Control* control)
      : dispatcher_(dispatcher), metrics_(metrics), control_(control) {}

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* ctx,
                                       const inference::ServerLiveRequest*,
                                       inference::ServerLiveResponse* out) override {
    out->set_live(true);
    return Done(ctx, grpc::Status::OK);
  }
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* ctx,
                                        const inference::ServerReadyRequest*,
                                        inference::ServerReadyResponse* out) override {
    out->set_ready(AllReady(*dispatcher_));
    return Done(ctx, grpc::Status::OK);
  }
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* ctx,
                                           const inference::ServerMetadataRequest*,
                                           inference::ServerMetadataResponse* out) override {
    Json m = lumen::serve::ServerMetadata();
    out->set_name(m["name"]);
    out->set_version(m["version"]);
    for (const auto& e : m["extensions"]) out->add_extensions(e.get<std::string>());
    return Done(ctx, grpc::Status::OK);
  }
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* ctx,
                                       const inference::ModelReadyRequest* in,
                                       inference::ModelReadyResponse* out) override {
    auto* reactor = ctx->DefaultReactor();
    auto target = Resolve(*dispatcher_, in->name());
    if (!target.ok()) {
      out->set_ready(false);  // known but not running: not ready
      reactor->Finish(absl::IsUnavailable(target.status()) ? grpc::Status::OK
                                                           : GrpcFromStatus(target.status()));
      return reactor;
    }
    Request r;
    r.path = ModelPath(in->name(), in->version(), "ready");
    Forward(ctx, *target, std::move(r), [reactor, out](int status, const std::string& body) {
      if (status == 404) return reactor->Finish(GrpcFromHttp(status, body));
      out->set_ready(status == 200);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* ctx,
                                          const inference::ModelMetadataRequest* in,
                                          inference::ModelMetadataResponse* out) override {
    auto* reactor = ctx->DefaultReactor();
    Request r;
    r.path = ModelPath(in->name(), in->version(), "");
    auto target = Resolve(*dispatcher_, in->name());
    if (!target.ok()) {
      reactor->Finish(GrpcFromStatus(target.status()));
      return reactor;
    }
    Forward(ctx, *target, std::move(r), [reactor, out](int status, const std::string& body) {
      if (status != 200) return reactor->Finish(GrpcFromHttp(status, body));
      Json j = ParseJson(body);
      if (!j.is_object()) {
        return reactor->Finish(grpc::Status(grpc::StatusCode::INTERNAL, "bad metadata"));
      }
      out->set_name(j.value("name", ""));
      out->set_platform(j.value("platform", ""));
      for (const auto& v : j.value("versions", Json::array())) {
        if (v.is_string()) out->add_versions(v.get<std::string>());
      }
      auto tensors = [](const Json& list, auto* dest) {
        for (const auto& t : list) {
          auto* m = dest->Add();
          m->set_name(t.value("name", ""));
          m->set_datatype(t.value("datatype", ""));
          for (const auto& d : t.value("shape", Json::array())) {
            if (d.is_number_integer()) m->add_shape(d.get<int64_t>());
          }
        }
      };
      tensors(j.value("inputs", Json::array()), out->mutable_inputs());
      tensors(j.value("outputs", Json::array()), out->mutable_outputs());
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* ctx,
                                       const inference::ModelInferRequest* in,
                                       inference::ModelInferResponse* out) override {
    auto* reactor = ctx->DefaultReactor();
    Request r;
    r.method = "POST";
    r.path = ModelPath(in->model_name(), in->model_version(), "infer");
    r.headers["x-lumen-v2"] = "grpc";
    r.headers["x-lumen-model"] = in->model_name();
    r.body = in->SerializeAsString();
    auto target = Resolve(*dispatcher_, in->model_name());
    if (!target.ok()) {
      reactor->Finish(GrpcFromStatus(target.status()));
      return reactor;
    }
    Forward(ctx, *target, std::move(r), [reactor, out](int status, const std::string& body) {
      if (status != 200) return reactor->Finish(GrpcFromHttp(status, body));
      if (!out->ParseFromString(body)) {
        return reactor->Finish(
            grpc::Status(grpc::StatusCode::INTERNAL, "the replica's answer does not parse"));
      }
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }
  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* ctx,
                                            const inference::RepositoryIndexRequest* in,
                                            inference::RepositoryIndexResponse* out) override {
    for (const auto& row : Index(*dispatcher_, in->ready())) {
      auto* m = out->add_models();
      m->set_name(row["name"]);
      m->set_state(row["state"]);
      m->set_reason(row.value("reason", ""));
    }
    return Done(ctx, grpc::Status::OK);
  }
  grpc::ServerUnaryReactor* RepositoryModelLoad(grpc::CallbackServerContext* ctx,
                                                const inference::RepositoryModelLoadRequest* in,
                                                inference::RepositoryModelLoadResponse*) override {
    if (auto [status, why] = Control::Refusal(Token(ctx)); status != 0) {
      return Done(ctx, status == 401 ? grpc::Status(grpc::StatusCode::UNAUTHENTICATED, why)
                                     : grpc::Status(grpc::StatusCode::UNAVAILABLE, why));
    }
    std::vector<std::string> keys;
    for (const auto& [k, v] : in->parameters()) keys.push_back(k);
    if (absl::Status s = CheckLoadParameters(keys); !s.ok()) return Done(ctx, GrpcFromStatus(s));
    return RunControl(ctx, in->model_name(), true);
  }
  grpc::ServerUnaryReactor* RepositoryModelUnload(
      grpc::CallbackServerContext* ctx, const inference::RepositoryModelUnloadRequest* in,
      inference::RepositoryModelUnloadResponse*) override {
    return RunControl(ctx, in->model_name(), false);
  }

 private:
  static grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* ctx, grpc::Status s) {
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(std::move(s));
    return reactor;
  }

  // Sends `r` to a replica of `target`; `done(status, body)` with the answer.
  void Forward(grpc::CallbackServerContext* ctx, const Target& target, Request r,
               std::function<void(int, const std::string&)> done) {
    int64_t timeout_ms = -1;  // the deployment's, unless the client set a deadline
    if (ctx->deadline() != std::chrono::system_clock::time_point::max()) {
      timeout_ms = std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(
                                            ctx->deadline() - std::chrono::system_clock::now())
                                            .count());
    }
    auto start = Clock::now();
    dispatcher_->Send(
        target.app, target.deployment, std::move(r),
        [metrics = metrics_, t = target, start, done](absl::StatusOr<Response> answer) {
          Response a = answer.ok() ? std::move(*answer) : FromStatus(answer.status());
          metrics->Record(t.app, t.deployment, "grpc", a.status,
                          std::chrono::duration<double>(Clock::now() - start).count());
          done(a.status, a.body);
        },
        timeout_ms);
  }

  static std::string Token(grpc::CallbackServerContext* ctx) {
    auto header = [ctx](const char* name) {
      auto it = ctx->client_metadata().find(name);
      return it == ctx->client_metadata().end() ? std::string()
                                                : std::string(it->second.data(), it->second.size());
    };
    return PresentedToken(header("x-lumen-token"), header("authorization"));
  }
  grpc::ServerUnaryReactor* RunControl(grpc::CallbackServerContext* ctx, const std::string& model,
                                       bool load) {
    auto* reactor = ctx->DefaultReactor();
    control_->Run(model, load, Token(ctx), [reactor](int status, const std::string& error) {
      reactor->Finish(status == 200   ? grpc::Status::OK
                      : status == 401 ? grpc::Status(grpc::StatusCode::UNAUTHENTICATED, error)
                                      : GrpcFromHttp(status, Json({{"error", error}}).dump()));
    });
    return reactor;
  }

  Dispatcher* dispatcher_;
  ServeMetrics* metrics_;
  Control* control_;
};

V2Ingress::V2Ingress(Dispatcher* dispatcher, ServeMetrics* metrics)
    : dispatcher_(dispatcher),
      metrics_(metrics),
      control_(std::make_unique<Control>(dispatcher)),
      grpc_(std::make_unique<GrpcService>(dispatcher, metrics, control_.get())) {}

V2Ingress::~V2Ingress() = default;

grpc::Service* V2Ingress::grpc_service() { return grpc_.get(); }

std::string V2Ingress::ModelMetricsText() {
  auto* rt = lumen::internal::CurrentRuntime();
  if (rt == nullptr) return "";
  auto keys = rt->KvKeys(kServeKvNamespace, "model-metrics/");
  if (!keys.ok()) return "";
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  std::string text;
  bool typed = false;
  for (const auto& key : *keys) {
    auto got = rt->KvGet(kServeKvNamespace, key);
    if (!got.ok() || !got->has_value()) continue;
    Json j = ParseJson(**got);
    if (!j.is_object() || now - j.value("at_ms", int64_t{0}) > kMetricsMaxAgeMs) continue;
    if (!typed) {
      text +=
          "# TYPE lumen_model_requests_total counter\n"
          "# TYPE lumen_model_failures_total counter\n"
          "# TYPE lumen_model_batch_size histogram\n"
          "# TYPE lumen_model_queue_seconds histogram\n"
          "# TYPE lumen_model_compute_seconds histogram\n"
          "# TYPE lumen_model_loaded gauge\n"
          "# TYPE lumen_cache_hits_total counter\n"
          "# TYPE lumen_cache_misses_total counter\n"
          "# TYPE lumen_cache_bypassed_total counter\n"
          "# TYPE lumen_cache_entries gauge\n"
          "# TYPE lumen_cache_evictions_total counter\n"
          "# TYPE lumen_cache_expired_total counter\n"
          "# TYPE lumen_cache_lookup_seconds histogram\n";
      typed = true;
    }
    text += j.value("text", "");
  }
  return text;
}

}  // namespace lumen::serve
