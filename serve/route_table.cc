// Routing tables as JSON; see route_table.h.
#include "serve/route_table.h"

#include "nlohmann/json.hpp"

namespace lumen::serve {

std::string RoutesKey(const std::string& app) { return "routes/" + app; }

std::string RouteTable::PathBelowPrefix(const std::string& path) const {
  std::string below = route_prefix == "/" ? path : path.substr(route_prefix.size());
  return below.empty() ? "/" : below;
}

std::string RouteTable::ToJson() const {
  nlohmann::json j;
  j["app"] = app;
  j["route_prefix"] = route_prefix;
  j["ingress"] = ingress;
  j["version"] = version;
  j["deployments"] = nlohmann::json::object();
  for (const auto& [name, d] : deployments) {
    nlohmann::json dj = {{"router", d.router},
                         {"max_ongoing", d.max_ongoing},
                         {"max_queued", d.max_queued},
                         {"hash_header", d.hash_header},
                         {"request_timeout_s", d.request_timeout_s},
                         {"exposed", d.exposed},
                         {"unavailable", d.unavailable},
                         {"models", d.models},
                         {"replicas", nlohmann::json::array()}};
    for (const auto& r : d.replicas) {
      dj["replicas"].push_back({{"id", r.id},
                                {"actor", r.actor.Hex()},
                                {"node", r.node},
                                {"address", r.address},
                                {"ongoing", r.load.ongoing},
                                {"completed_per_s", r.load.completed_per_s},
                                {"reported_at_ms", r.load.reported_at_ms},
                                {"models", r.models}});
    }
    j["deployments"][name] = dj;
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::StatusOr<RouteTable> RouteTable::FromJson(const std::string& text) {
  try {
    nlohmann::json j = nlohmann::json::parse(text);
    RouteTable t;
    t.app = j.at("app").get<std::string>();
    t.route_prefix = j.at("route_prefix").get<std::string>();
    t.ingress = j.at("ingress").get<std::string>();
    t.version = j.at("version").get<int64_t>();
    for (const auto& [name, dj] : j.at("deployments").items()) {
      DeploymentRoute d;
      d.router = dj.at("router").get<std::string>();
      d.max_ongoing = dj.at("max_ongoing").get<int>();
      d.max_queued = dj.at("max_queued").get<int>();
      d.hash_header = dj.at("hash_header").get<std::string>();
      d.request_timeout_s = dj.at("request_timeout_s").get<double>();
      d.exposed = dj.value("exposed", false);
      d.unavailable = dj.value("unavailable", "");
      if (dj.contains("models") && dj["models"].is_array()) {
        d.models = dj["models"].get<std::vector<std::string>>();
      }
      for (const auto& rj : dj.at("replicas")) {
        ReplicaRoute r;
        r.id = rj.at("id").get<std::string>();
        r.actor = ActorId::FromHex(rj.at("actor").get<std::string>());
        r.node = rj.at("node").get<std::string>();
        r.address = rj.value("address", "");
        r.load.ongoing = rj.at("ongoing").get<double>();
        r.load.completed_per_s = rj.at("completed_per_s").get<double>();
        r.load.reported_at_ms = rj.at("reported_at_ms").get<int64_t>();
        if (rj.contains("models") && rj["models"].is_array()) {
          r.models = rj["models"].get<std::vector<std::string>>();
        }
        d.replicas.push_back(r);
      }
      t.deployments[name] = std::move(d);
    }
    return t;
  } catch (const std::exception& e) {
    return absl::DataLossError(std::string("bad routing table: ") + e.what());
  }
}

}  // namespace lumen::serve
