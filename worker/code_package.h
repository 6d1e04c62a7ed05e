// A job's code package: the shared libraries that hold its remote functions.
// The driver finds them (every library that registered a LUMEN_REMOTE
// function, plus Config::code_paths), uploads each to the GCS KV store under
// its SHA-256 once, and lists them in the job; node managers fetch and cache
// them (node/code_cache.h); workers load them.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "proto/common.pb.h"
#include "rpc/gcs_client.h"

namespace lumen::worker {

struct CodePackage {
  std::vector<std::string> files;     // absolute paths, in load order
  std::set<std::string> driver_only;  // functions registered in the executable itself
};

CodePackage CollectCodePackage(const std::vector<std::string>& extra_files);
absl::StatusOr<std::vector<proto::CodeFile>> UploadCodePackage(
    rpc::GcsClient* gcs, const std::vector<std::string>& files);
// Loads the libraries in order (their LUMEN_REMOTE functions register).
// The error names the file and the loader's message.
absl::Status LoadCodePackage(const std::vector<std::string>& files);

}  // namespace lumen::worker
