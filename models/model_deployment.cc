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
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "lumen/api.h"
#include "lumen/serve.h"
#include "models/model_host.h"
#include "serve/route_table.h"

namespace lumen::models {
namespace {

constexpr auto kMetricsPeriod = std::chrono::seconds(2);

class ModelDeployment {
 public:
  static ModelDeployment* Create(const Json& init_args) {
    HostOptions o;
    serve::ReplicaContext ctx = serve::CurrentReplica();
    o.deployment = ctx.deployment;
    o.max_loaded = init_args.value("max_loaded", size_t{0});
    return new ModelDeployment(std::move(o), ctx);
  }

  ~ModelDeployment() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (publisher_.joinable()) publisher_.join();
    if (auto* rt = lumen::internal::CurrentRuntime()) {
      (void)rt->KvDel(serve::kServeKvNamespace, MetricsKey());
    }
  }

  serve::Response Call(const serve::Request& request) { return host_.Handle(request); }

  void Reconfigure(const Json& user_config) {
    absl::Status s = host_.Apply(user_config);
    if (!s.ok()) throw std::runtime_error(std::string(s.message()));
  }

  bool CheckHealth() { return true; }

  std::vector<std::string> LoadedModels() { return host_.Loaded(); }

 private:
  ModelDeployment(HostOptions o, serve::ReplicaContext ctx)
      : host_(std::move(o)), context_(std::move(ctx)) {
    if (lumen::internal::CurrentRuntime() != nullptr && !context_.app.empty()) {
      publisher_ = std::thread([this] { Publish(); });
    }
  }

  std::string MetricsKey() const {
    return "model-metrics/" + context_.app + "/" + context_.replica;
  }

  void Publish() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, kMetricsPeriod, [this] { return stop_; })) {
      lock.unlock();
      if (auto* rt = lumen::internal::CurrentRuntime()) {
        Json value = {{"at_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count()},
                      {"text", host_.MetricsText(context_.replica)},
                      {"status", host_.Status()}};
        (void)rt->KvPut(serve::kServeKvNamespace, MetricsKey(),
                        value.dump(-1, ' ', false, Json::error_handler_t::replace));
      }
      lock.lock();
    }
  }

  ModelHost host_;
  serve::ReplicaContext context_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread publisher_;
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
