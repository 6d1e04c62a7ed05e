// The process-wide table of remote functions; see lumen/internal/registry.h.
#include <cxxabi.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>

#include "lumen/internal/registry.h"

namespace lumen::internal {
namespace {

struct Registry {
  std::mutex mu;
  std::vector<std::unique_ptr<FunctionInfo>> functions;  // registration order
  std::map<std::string, FunctionInfo*> by_name;
  std::map<std::string, FunctionInfo*> by_key;
};

// Filled by static initializers of libraries as they load, so it must exist
// before any of them runs (function-local static).
Registry& TheRegistry() {
  static Registry* registry = new Registry();
  return *registry;
}

}  // namespace

void RegisterFunction(FunctionInfo info) {
  Registry& r = TheRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (r.by_name.count(info.name)) return;  // the first library to register a name wins
  auto owned = std::make_unique<FunctionInfo>(std::move(info));
  r.by_name[owned->name] = owned.get();
  r.by_key.emplace(owned->key, owned.get());
  r.functions.push_back(std::move(owned));
}

const FunctionInfo* FindFunctionByName(const std::string& name) {
  Registry& r = TheRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.by_name.find(name);
  return it == r.by_name.end() ? nullptr : it->second;
}

const FunctionInfo* FindFunctionByKey(const std::string& key) {
  Registry& r = TheRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.by_key.find(key);
  return it == r.by_key.end() ? nullptr : it->second;
}

std::vector<const FunctionInfo*> AllFunctions() {
  Registry& r = TheRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<const FunctionInfo*> out;
  for (const auto& f : r.functions) out.push_back(f.get());
  return out;
}

std::vector<std::string> SplitNames(const char* names) {
  std::vector<std::string> out;
  std::string current;
  int depth = 0;
  auto flush = [&] {
    size_t b = current.find_first_not_of(" \t\n&");
    size_t e = current.find_last_not_of(" \t\n");
    out.push_back(b == std::string::npos ? "" : current.substr(b, e - b + 1));
    current.clear();
  };
  for (const char* p = names; *p; ++p) {
    char c = *p;
    if (c == '<' || c == '(') depth++;
    if (c == '>' || c == ')') depth--;
    if (c == ',' && depth == 0) {
      flush();
      continue;
    }
    current.push_back(c);
  }
  flush();
  return out;
}

absl::Status UserError(const std::string& function, const std::string& type,
                       const std::string& what) {
  std::string msg = function + " threw " + type;
  if (!what.empty()) msg += ": " + what;
  return absl::UnknownError(msg);
}

}  // namespace lumen::internal
