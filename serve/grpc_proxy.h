// GrpcProxy: the serving gRPC ingress. lumen.proto.ServePredict/Predict
// reaches an application's deployment through the dispatcher, like an HTTP
// request (proto/serve.proto), and the standard grpc.health.v1.Health
// service answers SERVING while the proxy runs; inference.GRPCInferenceService
// (KServe v2) reaches models (v2_ingress.h). It talks gRPC directly (an
// ingress for outside clients, without lumen's cluster token), the one
// place outside rpc/ that does. Requests run on gRPC's callback threads and
// answer from the dispatcher's.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "serve/dispatcher.h"
#include "serve/metrics.h"
#include "serve/v2_ingress.h"

namespace lumen::serve {

class GrpcProxy {
 public:
  GrpcProxy(std::string host, int port, Dispatcher* dispatcher, ServeMetrics* metrics);
  ~GrpcProxy();  // stops

  absl::Status Start();
  int port() const { return port_; }
  void Stop();

 private:
  class Service;
  std::string host_;
  int port_;
  Dispatcher* dispatcher_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<V2Ingress> v2_;
  struct Server;
  std::unique_ptr<Server> server_;
};

}  // namespace lumen::serve
