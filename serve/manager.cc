// The serve manager actor; see manager.h.
#include "serve/manager.h"

#include "serve/model_apps.h"

#include <algorithm>
#include <future>
#include <set>
#include <stdexcept>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "lumen/api.h"
#include "serve/app_controller.h"
#include "serve/json_util.h"
#include "serve/node_proxy.h"
#include "serve/route_table.h"

namespace lumen::serve {
namespace {

constexpr char kApi[] = "/api/serve/applications";
constexpr char kCodeApi[] = "/api/serve/code/";
constexpr char kModelsApi[] = "/api/serve/models/";
constexpr int64_t kCallMs = 5'000;

lumen::internal::Runtime* Rt() { return lumen::internal::CurrentRuntime(); }

// The named actors of the "serve" namespace under `prefix`, by name
// (waits up to kCallMs).
absl::StatusOr<std::map<std::string, lumen::internal::ActorStateInfo>> ListNamed(
    const std::string& prefix) {
  auto done = std::make_shared<
      std::promise<absl::StatusOr<std::vector<lumen::internal::ActorStateInfo>>>>();
  auto got = done->get_future();
  Rt()->ListActorsAsync(kServeNamespace, prefix, [done](auto r) { done->set_value(std::move(r)); });
  if (got.wait_for(std::chrono::milliseconds(kCallMs)) != std::future_status::ready) {
    return absl::DeadlineExceededError("the GCS did not list actors in time");
  }
  auto listed = got.get();
  if (!listed.ok()) return listed.status();
  std::map<std::string, lumen::internal::ActorStateInfo> out;
  for (auto& a : *listed) {
    // A live one wins over dead ones of the same name.
    auto it = out.find(a.name);
    if (it == out.end() || it->second.state == lumen::internal::ActorStateInfo::kDead)
      out[a.name] = a;
  }
  return out;
}

bool IsHexDigest(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

Json ManagerOptions::ToJson() const {
  return {{"http_host", http_host},
          {"http_port", http_port},
          {"grpc_port", grpc_port},
          {"admin_port", admin_port},
          {"proxy_location", proxy_location}};
}

ManagerOptions ManagerOptions::FromJson(const Json& j) {
  ManagerOptions o;
  if (!j.is_object()) return o;
  o.http_host = j.value("http_host", o.http_host);
  o.http_port = j.value("http_port", o.http_port);
  o.grpc_port = j.value("grpc_port", o.grpc_port);
  o.admin_port = j.value("admin_port", o.admin_port);
  o.proxy_location = j.value("proxy_location", o.proxy_location);
  return o;
}

ServeManager* ServeManager::Create(std::string options_json) {
  ManagerOptions options =
      ManagerOptions::FromJson(Json::parse(options_json, nullptr, /*allow_exceptions=*/false));
  return new ServeManager(std::move(options));
}

ServeManager::ServeManager(ManagerOptions options)
    : options_(std::move(options)), loop_("serve_manager") {
  if (Rt() == nullptr) throw std::runtime_error("serve manager: lumen is not initialized");
  token_ = Rt()->ClusterToken();
  loop_.Start();
  auto start = [&](int port) {
    HttpServer::Options http{.host = "127.0.0.1", .port = port, .max_body_bytes = 64 << 20};
    // Host and token before the body: a stranger's upload is never read.
    http.max_connections = 256;
    http.on_headers = [this](const Request& head) -> std::optional<Response> {
      std::string why;
      if (Authorized(head, &why)) return std::nullopt;
      return Refusal(head, why);
    };
    admin_ =
        std::make_unique<HttpServer>(std::move(http), [this](Request r, HttpServer::Reply reply) {
          loop_.Post("manager.admin",
                     [this, r = std::move(r), reply = std::move(reply)] { reply(Handle(r)); });
        });
    return admin_->Start();
  };
  int port = options_.admin_port;
  if (port == 0) {
    // Restarted: the same port as before, when it is free here, so
    // clients that know the address keep working.
    auto before = Rt()->KvGet(kServeKvNamespace, kAdminKey);
    if (before.ok() && before->has_value() && (*before)->rfind("127.0.0.1:", 0) == 0) {
      (void)absl::SimpleAtoi((*before)->substr(10), &port);
    }
  }
  absl::Status s = start(port);
  if (!s.ok() && port > 0) {
    LUMEN_LOG_WARN("serve manager: admin port {} is taken ({}); using a free one", port,
                   s.ToString());
    s = start(0);
  }
  if (!s.ok()) throw std::runtime_error("serve manager: admin API: " + std::string(s.message()));
  std::string admin = "127.0.0.1:" + std::to_string(admin_->port());
  if (absl::Status put = Rt()->KvPut(kServeKvNamespace, kAdminKey, admin); !put.ok()) {
    throw std::runtime_error("serve manager: cannot record the admin address: " +
                             std::string(put.message()));
  }
  (void)Rt()->KvPut(kServeKvNamespace, kSystemKey, DumpJson(options_.ToJson()));
  LUMEN_LOG_INFO("serve manager: admin API on {}", admin);
  upkeep_ = loop_.RunEvery("manager.upkeep", std::chrono::seconds(1), [this] { Upkeep(); });
  loop_.Post("manager.first_upkeep", [this] { Upkeep(); });
}

ServeManager::~ServeManager() {
  admin_->Stop();
  std::promise<void> done;
  loop_.Post("manager.stop", [&] {
    upkeep_.reset();
    done.set_value();
  });
  done.get_future().wait_for(std::chrono::seconds(10));
  loop_.Stop();
}

std::string ServeManager::Address() {
  return DumpJson(
      {{"admin", "127.0.0.1:" + std::to_string(admin_->port())}, {"options", options_.ToJson()}});
}

bool ServeManager::Authorized(const Request& request, std::string* why) const {
  // A page in a browser may reach loopback (DNS rebinding): its Host then
  // names another site.
  std::string port = std::to_string(admin_->port());
  std::string host = request.Header("host");
  // With or without the port (a client may leave it out).
  std::string name =
      host.size() > port.size() + 1 &&
              host.compare(host.size() - port.size() - 1, std::string::npos, ":" + port) == 0
          ? host.substr(0, host.size() - port.size() - 1)
          : host;
  if (name != "127.0.0.1" && name != "localhost" && name != "[::1]") {
    *why = "Host '" + host + "' is not this admin API's (use 127.0.0.1:" + port + ")";
    return false;
  }
  std::string presented =
      PresentedToken(request.Header("x-lumen-token"), request.Header("authorization"));
  if (token_.empty() || !SameSecret(presented, token_)) {
    *why = presented.empty() ? "the admin API needs the cluster token: send 'Authorization: Bearer "
                               "TOKEN' (lumen serve does)"
                             : "wrong cluster token";
    return false;
  }
  return true;
}

Response ServeManager::Refusal(const Request& request, const std::string& why) {
  return Response::Error(request.Header("host").empty() || why.rfind("Host", 0) == 0 ? 421 : 401,
                         why);
}

Response ServeManager::Handle(const Request& request) {
  std::string why;
  if (!Authorized(request, &why)) return Refusal(request, why);
  const std::string& path = request.path;
  if (path == kApi && request.method == "GET") return Response::FromJson(Status());
  if (path == kApi && request.method == "PUT") return Deploy(request);
  if (path.rfind(std::string(kApi) + "/", 0) == 0 && request.method == "DELETE") {
    return Delete(path.substr(sizeof(kApi)));
  }
  if (path.rfind(kCodeApi, 0) == 0) {
    std::string digest = path.substr(sizeof(kCodeApi) - 1);
    if (!IsHexDigest(digest)) {
      return Response::Error(
          400, "expected " + std::string(kCodeApi) + "SHA256 (64 lowercase hex digits)");
    }
    if (request.method == "PUT") return PutCode(request, digest);
    if (request.method == "HEAD" || request.method == "GET") {
      auto keys = Rt()->KvKeys(kCodeNamespace, digest);
      if (!keys.ok()) return Response::Error(503, std::string(keys.status().message()));
      bool have = std::find(keys->begin(), keys->end(), digest) != keys->end();
      return have ? Response::Text("") : Response::Error(404, "no code " + digest);
    }
  }
  if (path == "/api/serve" && request.method == "DELETE") return Shutdown();
  if (path.rfind(kModelsApi, 0) == 0 && request.method == "POST") {
    std::vector<std::string> parts =
        absl::StrSplit(path.substr(sizeof(kModelsApi) - 1), '/', absl::SkipEmpty());
    if (parts.size() == 2 && (parts[1] == "load" || parts[1] == "unload")) {
      return ModelControl(parts[0], parts[1] == "load");
    }
  }
  return Response::Error(404, "the admin API has GET/PUT " + std::string(kApi) + ", DELETE " +
                                  kApi + "/APP, HEAD/PUT " + kCodeApi + "SHA256, POST " +
                                  kModelsApi + "NAME/load|unload and DELETE /api/serve");
}

std::string ServeManager::Admin(std::string method, std::string path, std::string authorization) {
  Request r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.headers["host"] = "127.0.0.1:" + std::to_string(admin_->port());
  r.headers["authorization"] = std::move(authorization);
  auto answer = std::make_shared<std::promise<Response>>();
  auto got = answer->get_future();
  loop_.Post("manager.proxy_admin",
             [this, r = std::move(r), answer] { answer->set_value(Handle(r)); });
  if (got.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    return DumpJson(
        {{"status", 503}, {"body", DumpJson({{"error", "the serve manager is busy"}})}});
  }
  Response out = got.get();
  return DumpJson({{"status", out.status}, {"body", out.body}});
}

Response ServeManager::ModelControl(const std::string& model, bool load) {
  auto declared = DeclaredApps();
  if (!declared.ok()) return Response::Error(503, std::string(declared.status().message()));
  for (const auto& app : *declared) {
    auto got = Rt()->KvGet(kServeKvNamespace, DeclaredKey(app));
    if (!got.ok()) return Response::Error(503, std::string(got.status().message()));
    if (!got->has_value()) continue;
    Json j = Json::parse(**got, nullptr, false);
    if (!j.is_object() || j.value("deleted", false) || !j.contains("config")) continue;
    auto config = AppConfigFromJson(j["config"]);
    if (!config.ok()) continue;
    for (DeploymentConfig& d : config->deployments) {
      if (std::find(d.models.begin(), d.models.end(), model) == d.models.end()) continue;
      if (d.models.size() != 1 || d.init_args.contains("max_loaded")) {
        return Response::Error(
            400, "model '" + model + "' is one of multiplexed deployment '" + d.name +
                     "': its models load on demand and unload least recently used first");
      }
      Json out = {{"model", model}, {"app", app}, {"state", load ? "loaded" : "unloaded"}};
      if (d.unloaded == !load) return Response::FromJson(out);
      d.unloaded = !load;
      // A model behind a `cache:`: its cache deployment has the model's
      // name (proxies route to it); the model's own goes with it.
      if (d.cls == "lumen.Cache" && d.init_args.is_object()) {
        std::string target = d.init_args.value("target", std::string());
        for (DeploymentConfig& other : config->deployments) {
          if (other.name == target) other.unloaded = !load;
        }
      }
      j["config"] = AppConfigToJson(*config);
      j["version"] = j.value("version", int64_t{0}) + 1;
      if (absl::Status s = Rt()->KvPut(kServeKvNamespace, DeclaredKey(app), DumpJson(j)); !s.ok()) {
        return Response::Error(503, "cannot store '" + app + "': " + std::string(s.message()));
      }
      auto c = GetActor<AppController>(ControllerActorName(app), kServeNamespace);
      if (c.ok()) (void)c->Task(&AppController::Sync).Remote();
      LUMEN_LOG_INFO("serve manager: model {} of {} {}", model, app, load ? "loaded" : "unloaded");
      return Response::FromJson(out);
    }
  }
  return Response::Error(404, "no model '" + model + "' in the deployed applications");
}

Response ServeManager::PutCode(const Request& request, const std::string& digest) {
  if (Sha256Hex(request.body) != digest) {
    return Response::Error(400, "the body's SHA-256 is not " + digest);
  }
  absl::Status s = Rt()->KvPut(kCodeNamespace, digest, request.body);
  if (!s.ok()) return Response::Error(503, "cannot store the code: " + std::string(s.message()));
  return Response::FromJson({{"digest", digest}, {"bytes", request.body.size()}});
}

absl::StatusOr<std::vector<std::string>> ServeManager::DeclaredApps() {
  auto got = Rt()->KvGet(kServeKvNamespace, kAppsKey);
  if (!got.ok()) return got.status();
  std::vector<std::string> out;
  if (!got->has_value()) return out;
  Json names = Json::parse(**got, nullptr, false);
  for (const auto& n : names.is_array() ? names : Json::array()) {
    if (n.is_string()) out.push_back(n.get<std::string>());
  }
  return out;
}

absl::Status ServeManager::WriteApps(const std::vector<std::string>& apps) {
  return Rt()->KvPut(kServeKvNamespace, kAppsKey, DumpJson(apps));
}

Response ServeManager::Deploy(const Request& request) {
  if (shutting_down_) return Response::Error(503, "serve is shutting down");
  Json body = ParseJson(request.body);
  if (!body.is_object() || !body.contains("config") || !body["config"].is_string()) {
    return Response::Error(400,
                           "expected a JSON body {\"config\": YAML text, \"file\": name, "
                           "\"code\": {app: [{name, digest}]}} (lumen serve deploy sends it)");
  }
  std::string file = body.value("file", std::string("config"));
  auto config = ParseServeConfig(body["config"].get<std::string>(), file, "");
  if (!config.ok()) return Response::Error(400, std::string(config.status().message()));
  const Json& code = body.contains("code") && body["code"].is_object() ? body["code"] : Json();
  auto keys = Rt()->KvKeys(kCodeNamespace, "");
  if (!keys.ok()) return Response::Error(503, std::string(keys.status().message()));
  std::set<std::string> stored(keys->begin(), keys->end());
  std::vector<std::string> model_warnings;
  for (AppConfig& app : config->applications) {
    app.shipped.clear();
    const Json& files = code.is_object() && code.contains(app.name) ? code[app.name] : Json();
    for (const auto& f : files.is_array() ? files : Json::array()) {
      ShippedFile s{f.is_object() ? f.value("name", "") : "",
                    f.is_object() ? f.value("digest", "") : ""};
      if (!IsHexDigest(s.digest) || !stored.count(s.digest)) {
        return Response::Error(400, "application '" + app.name + "': code file '" + s.name + "' (" +
                                        s.digest + ") was not uploaded: PUT its bytes to " +
                                        kCodeApi + "SHA256 first (lumen serve deploy does)");
      }
      app.shipped.push_back(s);
    }
    if (app.shipped.size() != app.code.size()) {
      return Response::Error(400, "application '" + app.name + "' names " +
                                      std::to_string(app.code.size()) + " code files but " +
                                      std::to_string(app.shipped.size()) +
                                      " were uploaded: deploy with `lumen serve deploy FILE`");
    }
    app.code.clear();  // paths on the deploying machine mean nothing here
    const Json& models =
        body.contains("models") && body["models"].is_object() && body["models"].contains(app.name)
            ? body["models"][app.name]
            : Json();
    absl::Status expanded = ExpandModels(
        &app, models, [&](const std::string& digest) { return stored.count(digest) > 0; },
        &model_warnings);
    if (!expanded.ok()) return Response::Error(400, std::string(expanded.message()));
    ExpandAppCache(&app);
  }
  // A model is found by its name alone (/v2/models/NAME): one per name.
  std::map<std::string, std::string> model_apps;
  for (const AppConfig& app : config->applications) {
    for (const auto& d : app.deployments) {
      for (const auto& m : d.models) {
        auto [it, fresh] = model_apps.emplace(m, app.name);
        if (!fresh) {
          return Response::Error(400, "model '" + m + "' is in applications '" + it->second +
                                          "' and '" + app.name + "': serve it from one");
        }
      }
    }
  }
  auto declared = DeclaredApps();
  if (!declared.ok()) return Response::Error(503, std::string(declared.status().message()));
  // 1. Each app's declared state, versioned, in the GCS.
  std::vector<std::string> names;
  for (const AppConfig& app : config->applications) {
    int64_t version = 1;
    if (auto old = Rt()->KvGet(kServeKvNamespace, DeclaredKey(app.name));
        old.ok() && old->has_value()) {
      Json j = Json::parse(**old, nullptr, false);
      if (j.is_object()) version = j.value("version", int64_t{0}) + 1;
    }
    Json value = {{"version", version}, {"config", AppConfigToJson(app)}, {"deleted", false}};
    absl::Status s = Rt()->KvPut(kServeKvNamespace, DeclaredKey(app.name), DumpJson(value));
    if (!s.ok())
      return Response::Error(503, "cannot store '" + app.name + "': " + std::string(s.message()));
    names.push_back(app.name);
  }
  // 2. Apps no longer in the config go (the config declares them all).
  std::vector<std::string> all = names;
  for (const auto& old : *declared) {
    if (std::find(names.begin(), names.end(), old) != names.end()) continue;
    Response r = Delete(old);
    if (r.status >= 300) return r;
    all.push_back(old);  // listed until its controller finished deleting it
  }
  if (absl::Status s = WriteApps(all); !s.ok()) {
    return Response::Error(503, "cannot store the application list: " + std::string(s.message()));
  }
  // 3. Controllers, made where missing, apply it now.
  KeepControllers();
  for (const auto& name : names) {
    auto c = GetActor<AppController>(ControllerActorName(name), kServeNamespace);
    if (c.ok()) (void)c->Task(&AppController::Sync).Remote();
  }
  Json out = Status();
  Json warnings = Json::array();
  if (config->http_port != options_.http_port || config->http_host != options_.http_host ||
      config->grpc_port != options_.grpc_port ||
      config->proxy_location != options_.proxy_location) {
    warnings.push_back("the config's http/grpc options differ from those serve runs with (" +
                       DumpJson(options_.ToJson()) +
                       "); they apply when serve is started again (lumen serve shutdown, then "
                       "deploy)");
  }
  for (auto& w : model_warnings) warnings.push_back(std::move(w));
  out["warnings"] = warnings;
  return Response::FromJson(out);
}

Response ServeManager::Delete(const std::string& app) {
  auto got = Rt()->KvGet(kServeKvNamespace, DeclaredKey(app));
  if (!got.ok()) return Response::Error(503, std::string(got.status().message()));
  if (!got->has_value()) return Response::Error(404, "no application '" + app + "'");
  Json j = Json::parse(**got, nullptr, false);
  if (!j.is_object()) j = Json::object();
  j["deleted"] = true;
  j["version"] = j.value("version", int64_t{0}) + 1;
  absl::Status s = Rt()->KvPut(kServeKvNamespace, DeclaredKey(app), DumpJson(j));
  if (!s.ok()) return Response::Error(503, std::string(s.message()));
  auto c = GetActor<AppController>(ControllerActorName(app), kServeNamespace);
  if (c.ok()) (void)c->Task(&AppController::Sync).Remote();
  return Response::FromJson({{"deleted", app}, {"status", "DELETING"}});
}

Response ServeManager::Shutdown() {
  shutting_down_ = true;
  auto declared = DeclaredApps();
  if (!declared.ok()) return Response::Error(503, std::string(declared.status().message()));
  for (const auto& app : *declared) (void)Delete(app);
  // Wait (bounded) for the controllers to stop their replicas.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::vector<std::string> left;
  do {
    KeepControllers();
    left.clear();
    auto after = DeclaredApps();
    if (after.ok()) left = *after;
    if (left.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // on the manager's own loop
  } while (std::chrono::steady_clock::now() < deadline);
  auto proxies = ListNamed(kProxyActorPrefix);
  if (proxies.ok()) {
    for (const auto& [name, a] : *proxies) {
      if (a.state != lumen::internal::ActorStateInfo::kDead) (void)Rt()->KillActor(a.id, true);
    }
  }
  (void)Rt()->KvPut(kServeKvNamespace, kAdminKey, "");
  Json out = {{"stopped", true}};
  if (!left.empty()) out["not_cleaned_up"] = left;
  return Response::FromJson(out);
}

void ServeManager::Upkeep() {
  KeepControllers();
  if (!shutting_down_) KeepProxies();
}

void ServeManager::KeepControllers() {
  auto declared = DeclaredApps();
  if (!declared.ok()) return;  // the GCS is away: keep what runs
  auto controllers = ListNamed("controller/");
  if (!controllers.ok()) return;
  std::vector<std::string> keep;
  for (const auto& app : *declared) {
    std::string name = ControllerActorName(app);
    auto it = controllers->find(name);
    bool alive =
        it != controllers->end() && it->second.state != lumen::internal::ActorStateInfo::kDead;
    auto got = Rt()->KvGet(kServeKvNamespace, DeclaredKey(app));
    Json d = got.ok() && got->has_value() ? Json::parse(**got, nullptr, false) : Json();
    bool deleted = !d.is_object() || d.value("deleted", false);
    if (deleted && alive) {
      auto done =
          Get(ActorHandle<AppController>(it->second.id).Task(&AppController::Deleted).Remote(),
              kCallMs);
      if (!done.ok() || !*done) {
        keep.push_back(app);
        continue;
      }
      (void)Rt()->KillActor(it->second.id, /*no_restart=*/true);
      alive = false;
    }
    if (deleted) {
      (void)Rt()->KvDel(kServeKvNamespace, DeclaredKey(app));
      (void)Rt()->KvDel(kServeKvNamespace, RoutesKey(app));
      if (auto proxies = ListNamed(kProxyActorPrefix); proxies.ok()) {
        for (const auto& [pname, p] : *proxies) {  // they drop it now, not at their next read
          if (p.state == lumen::internal::ActorStateInfo::kAlive) {
            (void)ActorHandle<NodeProxy>(p.id).Task(&NodeProxy::SetTable).Remote(app, "");
          }
        }
      }
      LUMEN_LOG_INFO("serve manager: application {} is deleted", app);
      continue;  // leaves the list
    }
    keep.push_back(app);
    if (!alive) {
      LUMEN_LOG_INFO("serve manager: starting the controller of {}", app);
      (void)Actor(AppController::Create)
          .SetName(name, kServeNamespace)
          .SetDetached()
          .SetMaxRestarts(-1)
          .SetMaxConcurrency(4)
          .Remote(app);
    }
  }
  if (keep != *declared) (void)WriteApps(keep);
}

void ServeManager::KeepProxies() {
  auto nodes = Nodes(/*ask_each_node=*/false);
  if (!nodes.ok()) return;
  auto proxies = ListNamed(kProxyActorPrefix);
  if (!proxies.ok()) return;
  std::set<std::string> wanted;
  for (const auto& n : *nodes) {
    if (!n.alive || (options_.proxy_location == "HeadOnly" && !n.is_head)) continue;
    std::string name = ProxyActorName(n.id);
    wanted.insert(name);
    auto it = proxies->find(name);
    if (it != proxies->end() && it->second.state != lumen::internal::ActorStateInfo::kDead)
      continue;
    LUMEN_LOG_INFO("serve manager: starting the proxy on node {}", n.id.Short());
    (void)Actor(NodeProxy::Create)
        .SetName(name, kServeNamespace)
        .SetDetached()
        .SetSchedulingStrategy(SchedulingStrategy::NodeAffinity(n.id))
        .SetMaxRestarts(-1)
        .SetMaxConcurrency(2)
        .Remote(options_.http_host, options_.http_port, options_.grpc_port);
  }
  for (const auto& [name, a] : *proxies) {
    if (!wanted.count(name) && a.state != lumen::internal::ActorStateInfo::kDead) {
      Rt()->KillActorAsync(a.id, true, [](absl::Status) {});
    }
  }
}

Json ServeManager::ProxyStatus() {
  Json out = Json::array();
  auto proxies = ListNamed(kProxyActorPrefix);
  if (!proxies.ok()) return out;
  std::vector<std::pair<lumen::internal::ActorStateInfo, ObjectRef<std::string>>> calls;
  for (const auto& [name, a] : *proxies) {
    if (a.state == lumen::internal::ActorStateInfo::kDead) continue;
    calls.emplace_back(a, ActorHandle<NodeProxy>(a.id).Task(&NodeProxy::Address).Remote());
  }
  for (auto& [a, call] : calls) {
    auto got = Get(call, 2'000);
    Json address = got.ok() ? Json::parse(*got, nullptr, false) : Json();
    std::string node = a.name.substr(sizeof(kProxyActorPrefix) - 1);
    out.push_back({{"node", node},
                   {"http", address.is_object() ? address.value("http", "") : ""},
                   {"grpc", address.is_object() ? address.value("grpc", "") : ""},
                   {"state", got.ok() ? "RUNNING" : "STARTING"},
                   {"message", got.ok() ? "" : std::string(got.status().message())}});
  }
  return out;
}

Json ServeManager::Status() {
  Json apps = Json::object();
  auto declared = DeclaredApps();
  std::vector<std::pair<std::string, ObjectRef<std::string>>> calls;
  if (declared.ok()) {
    auto controllers = ListNamed("controller/");
    for (const auto& app : *declared) {
      auto it = controllers.ok() ? controllers->find(ControllerActorName(app)) : controllers->end();
      if (!controllers.ok() || it == controllers->end() ||
          it->second.state == lumen::internal::ActorStateInfo::kDead) {
        apps[app] = {{"status", "BOOTING"},
                     {"message", "its controller is being started"},
                     {"route_prefix", ""},
                     {"deployments", Json::object()}};
        continue;
      }
      calls.emplace_back(
          app, ActorHandle<AppController>(it->second.id).Task(&AppController::Status).Remote());
    }
  }
  for (auto& [app, call] : calls) {
    auto got = Get(call, 3'000);
    Json s = got.ok() ? Json::parse(*got, nullptr, false) : Json();
    if (!s.is_object()) {
      s = {{"status", "UNKNOWN"},
           {"message", got.ok() ? "unreadable status" : std::string(got.status().message())}};
    }
    if (!s.contains("route_prefix")) s["route_prefix"] = "";
    if (!s.contains("deployments")) s["deployments"] = Json::object();
    apps[app] = s;
  }
  return {{"applications", apps}, {"proxies", ProxyStatus()}};
}

}  // namespace lumen::serve

LUMEN_REMOTE(lumen::serve::ServeManager::Create, &lumen::serve::ServeManager::Address,
             &lumen::serve::ServeManager::Admin);
