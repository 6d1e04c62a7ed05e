// The routing table of one application: for each deployment, its router
// policy, limits and live replicas (with their last reported load). The
// controller writes it to the GCS KV (namespace "serve", key
// "routes/<app>") on every change; proxies and handles read it from there.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lumen/id.h"
#include "serve/router.h"

namespace lumen::serve {

inline constexpr char kServeKvNamespace[] = "serve";
// Shipped code files by SHA-256 (the namespace of job code packages too).
inline constexpr char kCodeNamespace[] = "code";
std::string RoutesKey(const std::string& app);
// The names of the deployed applications, a JSON list (for proxies that
// route every application).
inline constexpr char kAppsKey[] = "apps";

struct ReplicaRoute {
  std::string id;  // "Detector#3": stable while the replica lives
  ActorId actor;
  std::string node;     // hex node id, for status
  std::string address;  // its data plane (channel.h); "": actor calls
  ReplicaLoad load;
  std::vector<std::string> models;  // models it has loaded (multiplexed lumen.Model)
};

struct DeploymentRoute {
  std::string router = "pow2";
  int max_ongoing = 8;
  int max_queued = 100;  // -1: no bound
  std::string hash_header = "x-lumen-shard-key";
  double request_timeout_s = 60;
  // Reachable by name through the ingresses (the app's ingress always is).
  bool exposed = false;
  // Why no replica can run now (e.g. "no node has {CPU: 64}"): with no
  // running replica, requests are answered 503 with it at once instead of
  // waiting. Empty while replicas run or are on their way.
  std::string unavailable;
  // The models it serves (/v2/models/NAME), for lumen.Model deployments.
  std::vector<std::string> models;
  std::vector<ReplicaRoute> replicas;
};

struct RouteTable {
  std::string app;
  std::string route_prefix;
  std::string ingress;
  int64_t version = 0;
  std::map<std::string, DeploymentRoute> deployments;

  // `path` (which the route prefix matches) without the prefix; "/" at least.
  std::string PathBelowPrefix(const std::string& path) const;

  std::string ToJson() const;
  static absl::StatusOr<RouteTable> FromJson(const std::string& text);
};

}  // namespace lumen::serve
