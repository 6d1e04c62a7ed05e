// Declared applications as JSON, the form they are kept in (GCS KV) and
// handed between the serve manager and the controllers; see config.h.
#include "serve/config.h"

#include "common/status.h"

namespace lumen::serve {
namespace {

Json DeploymentToJson(const DeploymentConfig& d) {
  Json j = {{"name", d.name},
            {"class", d.cls},
            {"num_replicas", d.num_replicas},
            {"resources", d.resources},
            {"max_ongoing_requests", d.max_ongoing_requests},
            {"max_queued_requests", d.max_queued_requests},
            {"router", d.router},
            {"hash_header", d.hash_header},
            {"request_timeout_s", d.request_timeout_s},
            {"health_check_period_s", d.health_check_period_s},
            {"init_args", d.init_args},
            {"user_config", d.user_config},
            {"max_batch_size", d.max_batch_size},
            {"batch_wait_timeout_s", d.batch_wait_timeout_s},
            {"expose", d.expose},
            {"models", d.models},
            {"unloaded", d.unloaded}};
  if (d.autoscaling) {
    const AutoscalingConfig& a = *d.autoscaling;
    j["autoscaling"] = {{"min_replicas", a.min_replicas},
                        {"max_replicas", a.max_replicas},
                        {"target_ongoing_requests", a.target_ongoing_requests},
                        {"upscale_delay_s", a.upscale_delay_s},
                        {"downscale_delay_s", a.downscale_delay_s}};
  }
  return j;
}

DeploymentConfig DeploymentFromJson(const Json& j) {
  DeploymentConfig d;
  d.name = j.at("name").get<std::string>();
  d.cls = j.at("class").get<std::string>();
  d.num_replicas = j.at("num_replicas").get<int>();
  d.resources = j.at("resources").get<std::map<std::string, double>>();
  d.max_ongoing_requests = j.at("max_ongoing_requests").get<int>();
  d.max_queued_requests = j.at("max_queued_requests").get<int>();
  d.router = j.at("router").get<std::string>();
  d.hash_header = j.at("hash_header").get<std::string>();
  d.request_timeout_s = j.at("request_timeout_s").get<double>();
  d.health_check_period_s = j.at("health_check_period_s").get<double>();
  d.init_args = j.at("init_args");
  d.user_config = j.at("user_config");
  d.max_batch_size = j.at("max_batch_size").get<int>();
  d.batch_wait_timeout_s = j.at("batch_wait_timeout_s").get<double>();
  d.expose = j.value("expose", false);
  d.unloaded = j.value("unloaded", false);
  if (j.contains("models") && j["models"].is_array()) {
    d.models = j["models"].get<std::vector<std::string>>();
  }
  if (j.contains("autoscaling")) {
    const Json& a = j["autoscaling"];
    AutoscalingConfig as;
    as.min_replicas = a.at("min_replicas").get<int>();
    as.max_replicas = a.at("max_replicas").get<int>();
    as.target_ongoing_requests = a.at("target_ongoing_requests").get<double>();
    as.upscale_delay_s = a.at("upscale_delay_s").get<double>();
    as.downscale_delay_s = a.at("downscale_delay_s").get<double>();
    d.autoscaling = as;
  }
  return d;
}

}  // namespace

Json AppConfigToJson(const AppConfig& app) {
  Json j = {{"name", app.name}, {"route_prefix", app.route_prefix}, {"ingress", app.ingress},
            {"code", app.code}, {"shipped", Json::array()},         {"deployments", Json::array()}};
  for (const auto& f : app.shipped)
    j["shipped"].push_back({{"name", f.name}, {"digest", f.digest}});
  for (const auto& d : app.deployments) j["deployments"].push_back(DeploymentToJson(d));
  return j;
}

absl::StatusOr<AppConfig> AppConfigFromJson(const Json& j) {
  try {
    AppConfig app;
    app.name = j.at("name").get<std::string>();
    app.route_prefix = j.at("route_prefix").get<std::string>();
    app.ingress = j.at("ingress").get<std::string>();
    app.code = j.at("code").get<std::vector<std::string>>();
    for (const auto& f : j.at("shipped")) {
      app.shipped.push_back({f.at("name").get<std::string>(), f.at("digest").get<std::string>()});
    }
    for (const auto& d : j.at("deployments")) app.deployments.push_back(DeploymentFromJson(d));
    ServeConfig one;
    one.applications.push_back(app);
    LUMEN_RETURN_IF_ERROR(ValidateServeConfig(one));
    return app;
  } catch (const std::exception& e) {
    return absl::DataLossError(std::string("a declared application does not parse: ") + e.what());
  }
}

}  // namespace lumen::serve
