// Turns an application's `models:` (config.h ModelGroup) into deployments
// of the `lumen.Model` class (models/model_host.h). The deploying side
// reads each repository and uploads the files (ReadModelGroups); the serve
// manager checks what arrived and makes the deployments (ExpandModels).
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "serve/config.h"

namespace lumen::serve {

// For each of `app`'s model groups, the models it serves as
// [[model, ...], ...] (models/repository.h ModelToJson), each file passed
// to `upload(bytes, label)` first.
absl::StatusOr<Json> ReadModelGroups(
    const AppConfig& app,
    const std::function<absl::Status(const std::string& bytes, const std::string& label)>& upload);

// Adds to `app->deployments` one deployment per model (or per multiplexed
// group) from `groups` (what ReadModelGroups gave), after checking that
// every file is `stored`. Settings come from the group; config.pbtxt adds
// what the model needs: a GPU for KIND_GPU, room for a full batch
// (max_ongoing_requests at least twice max_batch_size).
// `warnings` gets what the deploy should say: config.pbtxt fields lumen does
// not support (skipped), by model.
absl::Status ExpandModels(AppConfig* app, const Json& groups,
                          const std::function<bool(const std::string& digest)>& stored,
                          std::vector<std::string>* warnings);

// Puts each `cache:` in front of what it caches: for an application, a
// deployment "<ingress>-cache" becomes the ingress; for a model group
// (ExpandModels calls it), "<model>-cache" takes the model's name, so the
// proxies send the model's requests to it. The cache forwards misses to
// the target deployment.
void AddCache(AppConfig* app, const CacheConfig& cache, const std::string& target);
// The application's own `cache:` (after ExpandModels).
void ExpandAppCache(AppConfig* app);

}  // namespace lumen::serve
