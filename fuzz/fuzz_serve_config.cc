// Fuzzes the serve config parser (serve/config.cc): YAML text as the admin
// API receives it from a deployer (no base directory, so no file is
// looked at), then the checks and the JSON form the manager keeps it in.
#include <cstddef>
#include <cstdint>
#include <string>

#include "serve/config.h"
#include "serve/json_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string yaml(reinterpret_cast<const char*>(data), size);
  auto config = lumen::serve::ParseServeConfig(yaml, "fuzz.yaml", "");
  if (!config.ok()) return 0;
  // What the parser accepted passes the checks for configs built in C++.
  if (!lumen::serve::ValidateServeConfig(*config).ok()) __builtin_trap();
  for (const auto& app : config->applications) {
    lumen::Json j = lumen::serve::AppConfigToJson(app);
    // Kept as text in the GCS KV and read back by a controller.
    lumen::Json stored = lumen::Json::parse(lumen::serve::DumpJson(j), nullptr, false);
    auto back = lumen::serve::AppConfigFromJson(stored);
    if (!back.ok()) __builtin_trap();
    if (back->name != app.name || back->deployments.size() != app.deployments.size()) {
      __builtin_trap();
    }
  }
  return 0;
}
