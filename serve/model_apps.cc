// Model groups into deployments; see model_apps.h.
#include "serve/model_apps.h"

#include <filesystem>
#include <set>

#include "common/file_util.h"
#include "models/repository.h"

namespace lumen::serve {

absl::StatusOr<Json> ReadModelGroups(
    const AppConfig& app,
    const std::function<absl::Status(const std::string& bytes, const std::string& label)>& upload) {
  Json groups = Json::array();
  for (const ModelGroup& g : app.models) {
    std::vector<std::string> names = g.names;
    if (names.empty()) {
      auto all = models::ListModels(g.repository);
      if (!all.ok()) return all.status();
      if (all->empty()) {
        return absl::InvalidArgumentError("application '" + app.name + "': the repository " +
                                          g.repository +
                                          " has no model (a folder with config.pbtxt)");
      }
      names = *all;
    }
    Json list = Json::array();
    for (const std::string& name : names) {
      auto m = models::ReadModel(g.repository, name);
      if (!m.ok()) {
        return absl::Status(m.status().code(),
                            "application '" + app.name + "': " + std::string(m.status().message()));
      }
      for (const auto& f : m->files) {
        std::string path = (std::filesystem::path(g.repository) / name / f.path).string();
        auto bytes = ReadFile(path);
        if (!bytes.ok()) return bytes.status();
        if (Sha256Hex(*bytes) != f.digest) {
          return absl::AbortedError(path + " changed while it was read; deploy again");
        }
        if (absl::Status s = upload(*bytes, path); !s.ok()) return s;
      }
      list.push_back(models::ModelToJson(*m));
    }
    groups.push_back(std::move(list));
  }
  return groups;
}

absl::Status ExpandModels(AppConfig* app, const Json& groups,
                          const std::function<bool(const std::string& digest)>& stored,
                          std::vector<std::string>* warnings) {
  if (app->models.empty()) return absl::OkStatus();
  if (!groups.is_array() || groups.size() != app->models.size()) {
    return absl::InvalidArgumentError(
        "application '" + app->name + "' has " + std::to_string(app->models.size()) +
        " model repositories but the deploy sent " +
        std::to_string(groups.is_array() ? groups.size() : 0) +
        ": deploy with `lumen serve deploy FILE`, which reads and uploads them");
  }
  std::set<std::string> names;
  for (const auto& d : app->deployments) names.insert(d.name);
  auto add = [&](DeploymentConfig d) -> absl::Status {
    if (!names.insert(d.name).second) {
      return absl::InvalidArgumentError("application '" + app->name + "': '" + d.name +
                                        "' is both a model and another deployment: rename one");
    }
    app->deployments.push_back(std::move(d));
    return absl::OkStatus();
  };
  for (size_t i = 0; i < app->models.size(); ++i) {
    const ModelGroup& g = app->models[i];
    if (!groups[i].is_array() || groups[i].empty()) {
      return absl::InvalidArgumentError("application '" + app->name + "': model repository " +
                                        g.repository + " sent no model");
    }
    DeploymentConfig common = g.settings;
    common.cls = "lumen.Model";
    Json all = Json::array();
    for (const auto& mj : groups[i]) {
      auto m = models::ModelFromJson(mj);
      if (!m.ok()) {
        return absl::InvalidArgumentError("application '" + app->name +
                                          "': " + std::string(m.status().message()));
      }
      for (const auto& f : m->files) {
        if (!stored(f.digest)) {
          return absl::InvalidArgumentError("model '" + m->name + "': file " + f.path +
                                            " was not uploaded; deploy with `lumen serve deploy`");
        }
      }
      if (!m->unsupported.empty() && warnings != nullptr) {
        std::string list;
        for (const auto& u : m->unsupported) list += (list.empty() ? "" : ", ") + u;
        warnings->push_back("model '" + m->name + "': config.pbtxt sets fields lumen does not " +
                            "support, which are ignored: " + list);
      }
      DeploymentConfig d = common;
      // What the model's config asks of its replicas.
      int max_batch = m->config.max_batch_size();
      if (m->config.has_dynamic_batching() && max_batch > 1) {
        d.max_ongoing_requests = std::max(d.max_ongoing_requests, 2 * max_batch);
      }
      for (const auto& ig : m->config.instance_group()) {
        if (ig.kind() == models::config::ModelInstanceGroup::KIND_GPU &&
            !d.resources.count("GPU")) {
          d.resources["GPU"] = 1;
        }
      }
      if (!g.multiplex.empty()) {
        common.max_ongoing_requests = std::max(common.max_ongoing_requests, d.max_ongoing_requests);
        for (const auto& [k, v] : d.resources)
          common.resources[k] = std::max(common.resources[k], v);
        common.models.push_back(m->name);
        all.push_back(mj);
        continue;
      }
      d.name = m->name;
      d.models = {m->name};
      d.init_args = Json::object();
      d.user_config = {{"models", Json::array({mj})}};
      if (absl::Status s = add(std::move(d)); !s.ok()) return s;
      if (g.cache) AddCache(app, *g.cache, m->name);
    }
    if (!g.multiplex.empty()) {
      common.name = g.multiplex;
      common.init_args = {{"max_loaded", g.max_models_per_replica}};
      common.user_config = {{"models", all}};
      if (absl::Status s = add(std::move(common)); !s.ok()) return s;
      if (g.cache) AddCache(app, *g.cache, g.multiplex);
    }
  }
  app->models.clear();
  if (app->ingress.empty() && app->route_prefix.empty()) return absl::OkStatus();
  if (app->ingress.empty()) app->ingress = app->deployments.front().name;
  return absl::OkStatus();
}

void AddCache(AppConfig* app, const CacheConfig& cache, const std::string& target) {
  DeploymentConfig c = cache.settings;
  c.name = target + "-cache";
  c.cls = "lumen.Cache";
  c.init_args = {{"target", target},
                 {"embedder", cache.embedder},
                 {"max_entries", cache.max_entries},
                 {"ttl_s", cache.ttl_s}};
  if (cache.threshold) c.init_args["threshold"] = *cache.threshold;
  for (auto& d : app->deployments) {
    if (d.name == target) std::swap(c.models, d.models);  // the proxies route to the cache
  }
  if (app->ingress == target) app->ingress = c.name;
  app->deployments.push_back(std::move(c));
}

void ExpandAppCache(AppConfig* app) {
  if (!app->cache || app->ingress.empty()) return;
  CacheConfig cache = *app->cache;
  app->cache.reset();
  AddCache(app, cache, app->ingress);
}

}  // namespace lumen::serve
