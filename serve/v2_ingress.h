// The KServe v2 / Open Inference Protocol at the proxies. Every HTTP proxy
// answers /v2/... and every gRPC ingress serves inference.GRPCInferenceService:
// server live/ready/metadata and the repository index here, from the
// routing tables; model metadata, readiness and inference forwarded to a
// replica of the model's deployment (models/model_host.h), which decodes,
// checks, batches and runs. An unknown model is 404, a model with no
// running replica 503 naming its state, before anything is sent. The
// repository's load and unload take the cluster token and scale the
// model's deployment back up or to zero (through the serve manager).
#pragma once

#include <memory>
#include <string>

#include "serve/dispatcher.h"
#include "serve/http_server.h"
#include "serve/metrics.h"

namespace grpc {
class Service;
}

namespace lumen::serve {

class V2Ingress {
 public:
  V2Ingress(Dispatcher* dispatcher, ServeMetrics* metrics);
  ~V2Ingress();

  // Whether `path` is the protocol's (/v2 or below).
  static bool Owns(const std::string& path);
  void HandleHttp(Request request, HttpServer::Reply reply);
  // The gRPC service, for the gRPC ingress to register.
  grpc::Service* grpc_service();
  // Per-model metrics the replicas published (GCS KV), Prometheus text.
  static std::string ModelMetricsText();

 private:
  class Control;
  class GrpcService;
  Dispatcher* dispatcher_;
  ServeMetrics* metrics_;
  std::unique_ptr<Control> control_;
  std::unique_ptr<GrpcService> grpc_;
};

}  // namespace lumen::serve
