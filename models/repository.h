// The model repository, in Triton's layout:
//
//   <repo>/<model>/config.pbtxt        ModelConfig in protobuf text format
//   <repo>/<model>/<version>/...       each version's files (numeric folders)
//   <repo>/<model>/<other files>       shared by all versions (labels)
//
// ReadModel parses config.pbtxt (the fields lumen supports: proto/
// model_config.proto; others are skipped and listed by name), picks the
// versions its version_policy serves, and lists the files those versions
// need with their SHA-256, which is how they travel to replicas: by digest
// through the cluster, no shared file system.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "proto/model_config.pb.h"

namespace lumen::models {

struct ModelFile {
  std::string path;  // below the model's folder: "config.pbtxt", "1/model.onnx"
  std::string digest;
  int64_t size = 0;
};

struct RepoModel {
  std::string name;
  std::string config_text;  // config.pbtxt as written
  config::ModelConfig config;
  // Fields config.pbtxt sets that lumen does not support ("optimization
  // (line 12)"); loaded anyway, reported by status and metadata.
  std::vector<std::string> unsupported;
  std::vector<int64_t> available;  // version folders found
  std::vector<int64_t> versions;   // what version_policy serves
  std::vector<ModelFile> files;    // config, shared files, the served versions' files
};

// INVALID_ARGUMENT "FILE:LINE:COL: what" for a config that does not parse
// or says something impossible (a negative max_batch_size, an unknown data
// type, a preferred batch size above max_batch_size, ...). `model` is the
// folder's name: the config's name must be empty or the same.
absl::StatusOr<config::ModelConfig> ParseModelConfig(std::string_view text, const std::string& file,
                                                     const std::string& model,
                                                     std::vector<std::string>* unsupported);
// The versions `policy` serves out of `available` (Triton's rules: latest 1
// by default).
std::vector<int64_t> SelectVersions(const config::ModelConfig& config,
                                    std::vector<int64_t> available);
// The model folders of `repo`, sorted.
absl::StatusOr<std::vector<std::string>> ListModels(const std::string& repo);
// NOT_FOUND for a model folder that is missing; INVALID_ARGUMENT for a bad
// config or no version to serve. `with_digests`: read every file to hash it.
absl::StatusOr<RepoModel> ReadModel(const std::string& repo, const std::string& model,
                                    bool with_digests = true);

// What a replica needs to load a model: name, config text, versions and
// files by digest. The `lumen.Model` deployment's user_config carries a
// list of these (model_deployment.cc).
nlohmann::json ModelToJson(const RepoModel& model);
absl::StatusOr<RepoModel> ModelFromJson(const nlohmann::json& j);

}  // namespace lumen::models
