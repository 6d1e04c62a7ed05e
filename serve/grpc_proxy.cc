// The serving gRPC ingress; see grpc_proxy.h.
#include "serve/grpc_proxy.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/ascii.h"
#include "proto/serve.grpc.pb.h"
#include "rpc/server.h"
#include "serve/http_server.h"

namespace lumen::serve {
namespace {

// The largest Predict request, as the HTTP proxy's body limit.
constexpr size_t kMaxPredictRequestBytes = size_t{16} << 20;

grpc::Status ToGrpc(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(static_cast<int>(s.code())),
                      std::string(s.message()));
}

}  // namespace

class GrpcProxy::Service final : public proto::ServePredict::CallbackService {
 public:
  Service(Dispatcher* dispatcher, ServeMetrics* metrics)
      : dispatcher_(dispatcher), metrics_(metrics) {}

  grpc::ServerUnaryReactor* Predict(grpc::CallbackServerContext* ctx,
                                    const proto::PredictRequest* in,
                                    proto::PredictReply* out) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    Request r;
    r.method = in->method().empty() ? "POST" : in->method();
    r.path = "/";
    for (const auto& [k, v] : in->headers()) r.headers[absl::AsciiStrToLower(k)] = v;
    r.query.insert(in->query().begin(), in->query().end());
    r.body = in->body();
    std::shared_ptr<const AppRoute> table;
    if (!in->application().empty()) {
      table = dispatcher_->Find(in->application());
    } else if (!in->route().empty()) {
      table = dispatcher_->Match(in->route());
      if (table) r.path = table->PathBelowPrefix(in->route());
    }
    if (!table) {
      reactor->Finish(
          grpc::Status(grpc::StatusCode::NOT_FOUND,
                       "no application " +
                           (in->application().empty() ? "serves route '" + in->route() + "'"
                                                      : "'" + in->application() + "'") +
                           ": set application (a name) or route (a path)"));
      return reactor;
    }
    std::string deployment = in->deployment().empty() ? table->ingress : in->deployment();
    if (!table->Reachable(deployment)) {
      // Only the ingress answers outsiders, unless the config exposes more.
      reactor->Finish(grpc::Status(
          grpc::StatusCode::PERMISSION_DENIED,
          "deployment '" + deployment + "' of application '" + table->app +
              "' is not reachable from the gRPC ingress: call its ingress '" + table->ingress +
              "' (leave deployment empty), or set `expose: true` on it in the config"));
      return reactor;
    }
    auto start = std::chrono::steady_clock::now();
    auto record = [metrics = metrics_, app = table->app, deployment, start](int code) {
      metrics->Record(
          app, deployment, "grpc", code,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    };
    int64_t timeout_ms = -1;  // the deployment's, unless the client set a deadline
    if (ctx->deadline() != std::chrono::system_clock::time_point::max()) {
      timeout_ms = std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(
                                            ctx->deadline() - std::chrono::system_clock::now())
                                            .count());
    }
    dispatcher_->Send(
        table->app, deployment, std::move(r),
        [reactor, out, record](absl::StatusOr<Response> answer) {
          if (!answer.ok()) {
            record(HttpStatusOf(answer.status()));
            reactor->Finish(ToGrpc(answer.status()));
            return;
          }
          record(answer->status);
          out->set_status(answer->status);
          out->mutable_headers()->insert(answer->headers.begin(), answer->headers.end());
          out->set_body(std::move(answer->body));
          for (auto& c : answer->chunks) out->add_chunks(std::move(c));
          reactor->Finish(grpc::Status::OK);
        },
        timeout_ms);
    return reactor;
  }

 private:
  Dispatcher* dispatcher_;
  ServeMetrics* metrics_;
};

struct GrpcProxy::Server {
  std::unique_ptr<grpc::Server> server;
};

GrpcProxy::GrpcProxy(std::string host, int port, Dispatcher* dispatcher, ServeMetrics* metrics)
    : host_(std::move(host)),
      port_(port),
      dispatcher_(dispatcher),
      service_(std::make_unique<Service>(dispatcher, metrics)),
      v2_(std::make_unique<V2Ingress>(dispatcher, metrics)),
      server_(std::make_unique<Server>()) {}

GrpcProxy::~GrpcProxy() { Stop(); }

absl::Status GrpcProxy::Start() {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  rpc::ApplyServerBounds(&builder, "serve gRPC ingress", kMaxPredictRequestBytes);
  int selected = 0;
  const auto& tls = ServeTlsFromEnv();
  if (!tls.ok()) return tls.status();
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (tls->enabled()) {
    grpc::SslServerCredentialsOptions ssl;  // clients need no certificate
    ssl.pem_key_cert_pairs.push_back({tls->key_pem, tls->cert_pem});
    credentials = grpc::SslServerCredentials(ssl);
  }
  builder.AddListeningPort(host_ + ":" + std::to_string(port_), credentials, &selected);
  builder.RegisterService(service_.get());
  builder.RegisterService(v2_->grpc_service());
  server_->server = builder.BuildAndStart();
  if (!server_->server || selected == 0) {
    return absl::UnavailableError("cannot serve gRPC on " + host_ + ":" + std::to_string(port_) +
                                  " (is another server using the port?)");
  }
  port_ = selected;
  if (auto* health = server_->server->GetHealthCheckService()) {
    health->SetServingStatus(true);
  }
  return absl::OkStatus();
}

void GrpcProxy::Stop() {
  if (server_ && server_->server) {
    if (auto* health = server_->server->GetHealthCheckService()) health->SetServingStatus(false);
    server_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_->server.reset();
  }
}

}  // namespace lumen::serve
