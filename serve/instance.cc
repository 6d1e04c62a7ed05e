// The serve runtime in a driver; see instance.h.
#include "serve/instance.h"

#include <algorithm>

#include <filesystem>

#include "common/file_util.h"
#include "lumen/internal/runtime.h"

namespace lumen::serve {

std::vector<std::string> ServeLibraryPaths() {
  return {ObjectFileOf(reinterpret_cast<const void*>(&internal::RegisterDeployment)),
          ObjectFileOf(reinterpret_cast<const void*>(&ServeLibraryPaths))};
}

ServeInstance::ServeInstance(InstanceOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<ServeInstance>> ServeInstance::Start(InstanceOptions options) {
  if (lumen::internal::CurrentRuntime() == nullptr) {
    return absl::FailedPreconditionError("call lumen::Init before starting serve");
  }
  std::unique_ptr<ServeInstance> s(new ServeInstance(options));
  s->dispatcher_ = std::make_unique<Dispatcher>(Dispatcher::Options{.read_kv = false});
  ServeInstance* self = s.get();
  s->controller_ = std::make_unique<Controller>(
      Controller::Options{.local = s->dispatcher_.get(),
                          .on_publish = [self](const std::string& app, const std::string& table) {
                            std::lock_guard<std::mutex> lock(self->fleet_mu_);
                            if (self->fleet_) self->fleet_->Push(app, table);
                          }});
  s->proxy_ = std::make_unique<Proxy>(
      Proxy::Options{
          .host = options.http_host, .port = options.http_port, .threads = options.proxy_threads},
      s->dispatcher_.get(), &s->metrics_);
  LUMEN_RETURN_IF_ERROR(s->proxy_->Start());
  if (options.grpc_port >= 0) {
    s->grpc_ = std::make_unique<GrpcProxy>(options.http_host, options.grpc_port,
                                           s->dispatcher_.get(), &s->metrics_);
    LUMEN_RETURN_IF_ERROR(s->grpc_->Start());
  }
  s->admin_ = std::make_unique<HttpServer>(
      HttpServer::Options{.host = "127.0.0.1", .port = options.admin_port},
      [self](Request r, HttpServer::Reply reply) { self->Admin(std::move(r), std::move(reply)); });
  LUMEN_RETURN_IF_ERROR(s->admin_->Start());
  LUMEN_RETURN_IF_ERROR(lumen::internal::CurrentRuntime()->KvPut(
      kServeKvNamespace, kAdminKey, "127.0.0.1:" + std::to_string(s->admin_->port())));
  if (options.proxy_every_node) {
    std::lock_guard<std::mutex> lock(s->fleet_mu_);
    s->fleet_ = std::make_unique<ProxyFleet>(ProxyFleet::Options{.host = options.http_host,
                                                                 .http_port = options.http_port,
                                                                 .grpc_port = options.grpc_port,
                                                                 .head = GetRuntimeContext().node});
  }
  return s;
}

ServeInstance::~ServeInstance() {
  // No new requests; then the replicas go, the dispatcher answers what
  // waits (to the proxy, still alive), and the proxy goes last.
  std::unique_ptr<ProxyFleet> fleet;
  {
    std::lock_guard<std::mutex> lock(fleet_mu_);  // the controller may be pushing to it
    fleet.swap(fleet_);
  }
  fleet.reset();  // kills the other nodes' proxies
  proxy_->Stop();
  if (grpc_) grpc_->Stop();
  admin_.reset();
  controller_.reset();  // kills the replicas
  if (auto* rt = lumen::internal::CurrentRuntime())
    (void)rt->KvPut(kServeKvNamespace, kAdminKey, "");
  dispatcher_.reset();
  proxy_.reset();
  grpc_.reset();
}

int ServeInstance::grpc_port() const { return grpc_ ? grpc_->port() : -1; }

Json ServeInstance::Status() const {
  Json s = controller_->Status();
  const std::string& host = options_.http_host;
  s["proxies"] = Json::array({{{"node", GetRuntimeContext().node.Hex()},
                               {"http", host + ":" + std::to_string(proxy_->port())},
                               {"grpc", grpc_ ? host + ":" + std::to_string(grpc_->port()) : ""},
                               {"state", "RUNNING"},
                               {"message", ""}}});
  std::lock_guard<std::mutex> lock(fleet_mu_);
  if (fleet_) {
    for (const auto& p : fleet_->Status()) s["proxies"].push_back(p);
  }
  return s;
}

absl::Status ServeInstance::Deploy(const ServeConfig& config) {
  ServeConfig shipped = config;
  for (auto& app : shipped.applications) {
    app.shipped.clear();
    for (const auto& file : app.code) {
      if (std::find(options_.code.begin(), options_.code.end(), file) != options_.code.end()) {
        continue;  // in the job's code package: every worker has it loaded
      }
      // Not started with it: ship it through the cluster to the replicas.
      auto content = ReadFile(file);
      if (!content.ok()) {
        return absl::InvalidArgumentError("application '" + app.name + "': cannot read code file " +
                                          file + ": " + std::string(content.status().message()));
      }
      ShippedFile f{std::filesystem::path(file).filename().string(), Sha256Hex(*content)};
      std::lock_guard<std::mutex> lock(upload_mu_);  // Deploy may come from two threads
      if (!uploaded_.count(f.digest)) {
        absl::Status put =
            lumen::internal::CurrentRuntime()->KvPut(kCodeNamespace, f.digest, *content);
        if (!put.ok()) {
          return absl::UnavailableError("application '" + app.name + "': cannot upload " + file +
                                        " to the cluster: " + std::string(put.message()));
        }
        uploaded_.insert(f.digest);
      }
      app.shipped.push_back(f);
    }
  }
  return controller_->Apply(shipped);
}

void ServeInstance::Admin(Request request, HttpServer::Reply reply) {
  const std::string base = "/api/serve/applications";
  if (request.path == base && request.method == "GET") {
    return reply(Response::FromJson(Status()));
  }
  if (request.path == base && request.method == "PUT") {
    auto config = ParseServeConfig(request.body, request.Header("x-lumen-file", "config"),
                                   request.Header("x-lumen-base-dir", "/"));
    if (!config.ok()) return reply(Response::Error(400, std::string(config.status().message())));
    absl::Status s = Deploy(*config);
    if (!s.ok()) return reply(Response::Error(409, std::string(s.message())));
    return reply(Response::FromJson(controller_->Status()));
  }
  if (request.path.rfind(base + "/", 0) == 0 && request.method == "DELETE") {
    absl::Status s = controller_->Delete(request.path.substr(base.size() + 1));
    if (!s.ok()) return reply(Response::Error(404, std::string(s.message())));
    return reply(Response::FromJson(controller_->Status()));
  }
  reply(Response::Error(404, "the admin API has GET/PUT " + base + " and DELETE " + base + "/APP"));
}

}  // namespace lumen::serve
