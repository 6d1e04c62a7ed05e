// The serve config: what `lumen serve deploy/run FILE` reads (YAML) and
// what the C++ API builds directly. Parsing checks every field and says
// which one is wrong, on which line, and how to fix it; unknown fields are
// errors (a typo must not silently mean the default).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lumen/serve.h"

namespace lumen::serve {

struct AutoscalingConfig {
  int min_replicas = 1;
  int max_replicas = 1;
  double target_ongoing_requests = 2;
  double upscale_delay_s = 3;
  double downscale_delay_s = 60;
};

struct DeploymentConfig {
  std::string name;
  std::string cls;  // the LUMEN_DEPLOYMENT class; `name` when not given
  int num_replicas = 1;
  std::map<std::string, double> resources = {{"CPU", 1}};
  int max_ongoing_requests = 8;
  int max_queued_requests = 100;  // -1: no bound
  std::string router = "pow2";
  std::string hash_header = "x-lumen-shard-key";
  double request_timeout_s = 60;
  double health_check_period_s = 2;
  Json init_args;
  Json user_config;
  std::optional<AutoscalingConfig> autoscaling;
  // Requests handed to the class's CallBatch together (0: no batching).
  int max_batch_size = 0;
  double batch_wait_timeout_s = 0.01;
  // Reachable by name through the ingresses (gRPC `deployment`); the
  // application's ingress always is, the others only when exposed.
  bool expose = false;
  // The models this deployment serves (a `lumen.Model` deployment made
  // from `models:`); proxies route /v2/models/NAME by it.
  std::vector<std::string> models;
  // Unloaded through the v2 repository API (POST /v2/repository/models/
  // NAME/unload): no replicas until its load. Declared state kept with the
  // app in the GCS, not written in serve files; a deploy clears it.
  bool unloaded = false;
};

// `cache:` on an application or a model entry: a semantic response cache
// (models/cache) in front of it, as a deployment of its own (class
// lumen.Cache, named "<target>-cache"), placed by its own resources (CPU
// by default) while the model may run on GPUs. Requests are embedded
// (`embedder`: text, image or model:NAME), looked up by cosine similarity,
// and answered from the cache above `threshold`; misses go to the target
// and are kept (LRU within max_entries, for ttl_s).
struct CacheConfig {
  std::string embedder = "text";
  std::optional<double> threshold;  // none: the embedder's own (text 0.78)
  int64_t max_entries = 10'000;
  double ttl_s = 600;
  DeploymentConfig settings;  // name and class unused
};

// One entry of an application's `models:`: a model repository (Triton's
// layout, models/repository.h), which of its models to serve, and the
// deployment settings each gets. Each model becomes a deployment of its
// own name, or with `multiplex` all of them one deployment of that name
// holding at most `max_models_per_replica` loaded per replica. The serve
// manager expands these into deployments (class lumen.Model) when the
// files have been uploaded.
struct ModelGroup {
  std::string repository;          // absolute on the deploying machine
  std::vector<std::string> names;  // empty: every model in the repository
  std::string multiplex;           // deployment name; "": one deployment per model
  int max_models_per_replica = 0;
  DeploymentConfig settings;         // name and class unused
  std::optional<CacheConfig> cache;  // in front of each model's deployment
};

// A code file shipped through the cluster (GCS KV namespace "code", key
// = digest) rather than in the job's code package.
struct ShippedFile {
  std::string name;    // file name, no directory
  std::string digest;  // SHA-256, hex
};

struct AppConfig {
  std::string name;
  std::string route_prefix;       // "" : reachable only through handles
  std::vector<std::string> code;  // shared libraries, absolute paths
  // Set by the serve instance, not read from files: the `code` files the
  // serve process was not started with, uploaded to the cluster; its
  // replicas fetch and load them.
  std::vector<ShippedFile> shipped;
  std::string ingress;
  std::vector<DeploymentConfig> deployments;
  std::vector<ModelGroup> models;    // expanded into `deployments` by the manager
  std::optional<CacheConfig> cache;  // in front of the ingress (expanded by the manager)
  const DeploymentConfig* Find(const std::string& deployment) const;
};

struct ServeConfig {
  std::string http_host = "127.0.0.1";
  int http_port = 8000;
  int grpc_port = -1;                        // -1: no gRPC ingress; 0: any free port
  std::string proxy_location = "EveryNode";  // or HeadOnly: only the serve process's
  std::vector<AppConfig> applications;
};

// INVALID_ARGUMENT "FILE:LINE: FIELD: what is wrong. Fix: ..." on a bad
// file. Relative code paths are taken from `base_dir`; with an empty
// `base_dir` code paths are kept as written, unchecked (the serve manager:
// code comes as uploaded bytes, not from files on its machine).
absl::StatusOr<ServeConfig> ParseServeConfig(const std::string& yaml, const std::string& file_name,
                                             const std::string& base_dir);
absl::StatusOr<ServeConfig> LoadServeConfig(const std::string& path);
// Checks what the YAML parser checks, for configs built in C++.
absl::Status ValidateServeConfig(const ServeConfig& config);

// An application as JSON (how the serve manager keeps it in the GCS KV and
// hands it to its controller) and back; DATA_LOSS when it does not parse.
Json AppConfigToJson(const AppConfig& app);
absl::StatusOr<AppConfig> AppConfigFromJson(const Json& j);

}  // namespace lumen::serve
