// The `lumen.Cache` deployment: a semantic response cache (CacheService,
// cache_service.h) in front of another deployment of the same application.
// Put it where requests arrive (the ingress, or a route of its own) with
// init_args {"target": "DEPLOYMENT", "embedder": "text"}; a hit answers
// from the cache, a miss goes to the target through a DeploymentHandle.
//
// Each replica has its own cache (answers are not shared between
// replicas; routing that keeps a client on one replica helps the hit
// ratio). Like lumen.Model, each replica writes its metrics text to the
// GCS KV (namespace "serve", key "model-metrics/<app>/<replica>") every
// few seconds, where the proxies' /metrics pick it up.
#include <memory>
#include <stdexcept>

#include "lumen/api.h"
#include "lumen/serve.h"
#include "models/cache/cache_service.h"
#include "models/metrics_publisher.h"
#include "models/model_host.h"

namespace lumen::models {
namespace {

class CacheDeployment {
 public:
  static CacheDeployment* Create(const Json& init_args) {
    serve::ReplicaContext ctx = serve::CurrentReplica();
    // Replica::Create reports a throw from here as the replica's failure
    // to start, with this message.
    auto config = ParseCacheConfig(init_args);
    if (!config.ok()) throw std::invalid_argument(std::string(config.status().message()));
    if (config->target == ctx.deployment) {
      throw std::invalid_argument("lumen.Cache: init_args.target is the cache deployment '" +
                                  ctx.deployment + "' itself; name the deployment it fronts");
    }
    auto embedder = MakeEmbedder(config->embedder, init_args);
    if (!embedder.ok()) {
      throw std::invalid_argument("lumen.Cache: " + std::string(embedder.status().message()));
    }
    serve::DeploymentHandle target(ctx.app, config->target);
    ForwardFn forward = [target](const serve::Request& request) -> serve::Response {
      absl::StatusOr<serve::Response> r = target.Remote(request).get();
      if (!r.ok()) return ErrorResponse(r.status());
      return *std::move(r);
    };
    auto service = CacheService::Create(*config, std::move(*embedder), std::move(forward), ctx.app,
                                        ctx.replica);
    if (!service.ok()) {
      throw std::invalid_argument("lumen.Cache: " + std::string(service.status().message()));
    }
    return new CacheDeployment(std::move(*service), std::move(ctx), config->target);
  }

  serve::Response Call(const serve::Request& request) { return service_->Handle(request); }

  bool CheckHealth() { return true; }

 private:
  CacheDeployment(std::unique_ptr<CacheService> service, serve::ReplicaContext ctx,
                  std::string target)
      : service_(std::move(service)) {
    // "cache", not lumen.Model's "status" (per-model states), so that
    // readers of the models' states never mistake a cache for a model.
    publisher_ = std::make_unique<MetricsPublisher>(ctx, [this, target] {
      CacheStats s = service_->Stats();
      return Json{
          {"text", service_->MetricsText()},
          {"cache",
           {{"target", target}, {"entries", s.entries}, {"hits", s.hits}, {"misses", s.misses}}}};
    });
  }

  std::unique_ptr<CacheService> service_;
  std::unique_ptr<MetricsPublisher> publisher_;  // last: stops before service_ goes
};

const bool registered = [] {
  serve::internal::RegisterDeployment(
      "lumen.Cache",
      [](const Json& init_args) -> std::unique_ptr<serve::internal::DeploymentInstance> {
        return std::make_unique<serve::internal::DeploymentAdapter<CacheDeployment>>(
            CacheDeployment::Create(init_args));
      });
  return true;
}();

}  // namespace
}  // namespace lumen::models
