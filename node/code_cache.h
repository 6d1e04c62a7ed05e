// CodeCache: a node's copy of each job's code package. The driver uploaded
// the files to the GCS KV store (namespace "code", key = SHA-256); the node
// fetches each once, checks its digest and keeps it under
// <dir>/<digest>/<name>, so workers on any node load the job's code without a
// shared file system. Runs on the node manager loop.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "lumen/id.h"
#include "proto/common.pb.h"
#include "rpc/gcs_client.h"

namespace lumen::node {

// Where the lease manager gets a job's code files; faked in tests.
class CodeResolver {
 public:
  using Done = std::function<void(absl::StatusOr<std::vector<std::string>>)>;
  virtual ~CodeResolver() = default;
  // Local paths of the job's code files, in load order.
  virtual void Resolve(const JobId& job, Done done) = 0;
  virtual void Forget(const JobId& job) = 0;
};

class CodeCache : public CodeResolver {
 public:
  CodeCache(rpc::GcsClient* gcs, std::string dir) : gcs_(gcs), dir_(std::move(dir)) {}

  void Resolve(const JobId& job, Done done) override;
  // Drops the job's entry; callers still waiting get CANCELLED.
  void Forget(const JobId& job) override;
  // Local paths of `files` (a submitted job's --code), fetched as a job's
  // are; `key` names the set for Forget(key).
  void ResolveFiles(const std::string& key, std::vector<proto::CodeFile> files, Done done);
  void Forget(const std::string& key);

 private:
  struct JobEntry {
    bool done = false;
    absl::Status error;
    std::vector<std::string> paths;
    std::vector<Done> waiters;
  };
  // Whether a fetch must start (the first waiter of `key`); answers at once
  // when `key` is done.
  bool Wait(const std::string& key, Done done);
  void FetchFiles(const std::string& key, std::vector<proto::CodeFile> files, size_t next);
  void Finish(const std::string& key, absl::Status status);

  rpc::GcsClient* gcs_;
  std::string dir_;
  std::map<std::string, JobEntry> jobs_;  // by job id (binary) or a caller's key
};

}  // namespace lumen::node
