// The `lumen.Model` deployment: a ModelHost (model_host.h) behind the
// deployment interface, so models ride on serving's replicas, routers,
// autoscaling and rolling updates. The serve manager makes one per model
// (or one per multiplexed group) from the serve file's `models:`; its
// user_config lists the models with their files by digest, so a new version
// is a Reconfigure: loaded beside the running one, swapped in when ready.
//
// Each replica also writes its per-model metrics to the GCS KV (namespace
// "serve", key "model-metrics/<app>/<replica>") every few seconds, where
// the proxies' /metrics pick them up.
#include <memory>
#include <stdexcept>

#include "lumen/api.h"
#include "lumen/serve.h"
#include "models/metrics_publisher.h"
#include "models/model_host.h"

namespace lumen::models {
namespace {

class ModelDeployment {
 public:
  static ModelDeployment* Create(const Json& init_args) {
    HostOptions o;
    serve::ReplicaContext ctx = serve::CurrentReplica();
    o.deployment = ctx.deployment;
    o.max_loaded = init_args.value("max_loaded", size_t{0});
    return new ModelDeployment(std::move(o), ctx);
  }

  serve::Response Call(const serve::Request& request) { return host_.Handle(request); }

  void Reconfigure(const Json& user_config) {
    absl::Status s = host_.Apply(user_config);
    if (!s.ok()) throw std::runtime_error(std::string(s.message()));
  }

  bool CheckHealth() { return true; }

  std::vector<std::string> LoadedModels() { return host_.Loaded(); }

 private:
  ModelDeployment(HostOptions o, serve::ReplicaContext ctx) : host_(std::move(o)) {
    publisher_ = std::make_unique<MetricsPublisher>(ctx, [this, replica = ctx.replica] {
      return Json{{"text", host_.MetricsText(replica)}, {"status", host_.Status()}};
    });
  }

  ModelHost host_;
  std::unique_ptr<MetricsPublisher> publisher_;  // last: stops before host_ goes
};

const bool registered = [] {
  serve::internal::RegisterDeployment(
      "lumen.Model",
      [](const Json& init_args) -> std::unique_ptr<serve::internal::DeploymentInstance> {
        return std::make_unique<serve::internal::DeploymentAdapter<ModelDeployment>>(
            ModelDeployment::Create(init_args));
      });
  return true;
}();

}  // namespace
}  // namespace lumen::models
