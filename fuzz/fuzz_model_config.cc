// Fuzzes config.pbtxt reading (models/repository.cc ParseModelConfig): the
// protobuf text parser with lumen's skipping of top-level fields it does not
// support, and the checks after it. A config that parses is also read back
// through the JSON form replicas receive (ModelToJson/ModelFromJson), which
// must parse it the same way.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "google/protobuf/util/message_differencer.h"
#include "models/repository.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> unsupported;
  auto config = lumen::models::ParseModelConfig(text, "m/config.pbtxt", "m", &unsupported);
  if (!config.ok()) return 0;
  lumen::models::RepoModel m;
  m.name = "m";
  m.config_text = text;
  m.config = *config;
  m.versions = lumen::models::SelectVersions(*config, {1, 2, 3});
  m.files.push_back({"1/model.bin", std::string(64, 'a'), 1});
  auto back = lumen::models::ModelFromJson(lumen::models::ModelToJson(m));
  if (!back.ok()) {  // what parsed once must parse again
    std::fprintf(stderr, "%s\n", std::string(back.status().message()).c_str());
    std::abort();
  }
  // (Maps serialize in no fixed order: compare messages, not bytes.)
  if (!google::protobuf::util::MessageDifferencer::Equals(back->config, *config)) std::abort();
  return 0;
}
