// The engine registry; see engine.h.
#include "lumen/engine.h"

#include <dlfcn.h>

#include <filesystem>
#include <map>

#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/file_util.h"
#include "proto/model_config.pb.h"

namespace lumen::models {
namespace {

struct Registry {
  absl::Mutex mu;
  std::map<std::string, EngineFactory> by_name ABSL_GUARDED_BY(mu);
  std::map<std::string, std::string> platform_to_name ABSL_GUARDED_BY(mu);
};

Registry& Engines() {
  static auto* r = new Registry;
  return *r;
}

std::vector<TensorSpec> Specs(const auto& list, const config::ModelConfig& config) {
  std::vector<TensorSpec> out;
  for (const auto& t : list) {
    TensorSpec s;
    s.name = t.name();
    s.type = ParseDataType(config::DataType_Name(t.data_type())).value_or(DataType::kInvalid);
    if (config.max_batch_size() > 0) s.dims.push_back(-1);
    s.dims.insert(s.dims.end(), t.dims().begin(), t.dims().end());
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

void RegisterEngine(const std::string& name, std::vector<std::string> platforms,
                    EngineFactory factory) {
  Registry& r = Engines();
  absl::MutexLock lock(&r.mu);
  r.by_name[name] = std::move(factory);
  for (auto& p : platforms) r.platform_to_name[p] = name;
}

// Loads engine libraries from the folder liblumen_models is in: the one
// `name` names, or (name "") all of them.
static void LoadEngineLibraries(const std::string& name) {
  std::string self = ObjectFileOf(reinterpret_cast<const void*>(&LoadEngineLibraries));
  std::filesystem::path dir = std::filesystem::path(self).parent_path();
  std::vector<std::filesystem::path> libs;
  if (!name.empty()) {
    if (name.find('/') == std::string::npos)
      libs.push_back(dir / ("liblumen_engine_" + name + ".so"));
  } else {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      std::string f = e.path().filename().string();
      if (f.rfind("liblumen_engine_", 0) == 0 && e.path().extension() == ".so")
        libs.push_back(e.path());
    }
  }
  for (const auto& lib : libs) {
    if (std::filesystem::exists(lib)) ::dlopen(lib.c_str(), RTLD_NOW | RTLD_GLOBAL);
  }
}

absl::StatusOr<EngineFactory> FindEngine(const config::ModelConfig& config) {
  Registry& r = Engines();
  auto known = [&] {
    absl::MutexLock lock(&r.mu);
    return r.by_name.count(config.backend()) > 0 ||
           (config.backend().empty() && r.platform_to_name.count(config.platform()) > 0);
  };
  if (!known()) LoadEngineLibraries(config.backend());
  if (!known()) LoadEngineLibraries("");
  absl::MutexLock lock(&r.mu);
  std::string name = config.backend();
  if (name.empty()) {
    auto it = r.platform_to_name.find(config.platform());
    if (it != r.platform_to_name.end()) name = it->second;
  }
  auto it = r.by_name.find(name);
  if (it != r.by_name.end()) return it->second;
  std::vector<std::string> names;
  for (const auto& [n, f] : r.by_name) names.push_back(n);
  std::string asked = !config.backend().empty()    ? "backend '" + config.backend() + "'"
                      : !config.platform().empty() ? "platform '" + config.platform() + "'"
                                                   : "no backend or platform";
  return absl::NotFoundError("model '" + config.name() + "' names " + asked +
                             "; lumen has the engines: " + absl::StrJoin(names, ", ") +
                             " (set `backend:` in config.pbtxt to one of them)");
}

std::vector<std::string> EngineNames() {
  Registry& r = Engines();
  absl::MutexLock lock(&r.mu);
  std::vector<std::string> names;
  for (const auto& [n, f] : r.by_name) names.push_back(n);
  return names;
}

std::vector<TensorSpec> ConfigInputs(const config::ModelConfig& config) {
  return Specs(config.input(), config);
}
std::vector<TensorSpec> ConfigOutputs(const config::ModelConfig& config) {
  return Specs(config.output(), config);
}

std::string Parameter(const config::ModelConfig& config, const std::string& key,
                      const std::string& fallback) {
  auto it = config.parameters().find(key);
  return it == config.parameters().end() ? fallback : it->second.string_value();
}

}  // namespace lumen::models
