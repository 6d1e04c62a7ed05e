// The `cpp` engine: a user's C++ class (LUMEN_MODEL_CLASS, lumen/engine.h)
// in a shared library among the version's files.
#include <dlfcn.h>

#include <filesystem>

#include "lumen/engine.h"
#include "proto/model_config.pb.h"

namespace lumen::models {
namespace {

absl::StatusOr<std::unique_ptr<Engine>> LoadCpp(const LoadContext& c) {
  std::string cls = Parameter(*c.config, "class");
  if (cls.empty()) {
    return absl::InvalidArgumentError(
        "the cpp engine needs the class to make: add parameters { key: \"class\" value { "
        "string_value: \"MyModel\" } } to config.pbtxt");
  }
  std::string file = c.config->default_model_filename();
  if (file.empty()) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(c.version_dir, ec)) {
      if (e.path().extension() == ".so") file = e.path().filename().string();
    }
  }
  std::string path = c.version_dir + "/" + file;
  if (file.empty() || !std::filesystem::exists(path)) {
    return absl::NotFoundError("no model library " +
                               (file.empty() ? c.version_dir + "/*.so" : path) +
                               " (build the class into a shared library in the version folder, or "
                               "name it with default_model_filename)");
  }
  // RTLD_LOCAL: two versions' libraries may define the same class.
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* err = ::dlerror();
    return absl::InvalidArgumentError("cannot load " + file + ": " + (err ? err : "unknown"));
  }
  auto* make = reinterpret_cast<void* (*)()>(::dlsym(handle, ("lumen_model_class_" + cls).c_str()));
  if (make == nullptr) {
    return absl::NotFoundError(file + " has no model class '" + cls +
                               "': declare it with LUMEN_MODEL_CLASS(" + cls + ")");
  }
  auto* factory = static_cast<EngineFactory*>(make());
  return (*factory)(c);
}

}  // namespace

LUMEN_ENGINE(cpp, {"custom"}, LoadCpp);

}  // namespace lumen::models
