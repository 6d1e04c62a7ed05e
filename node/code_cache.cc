// Job code packages on local disk; see code_cache.h.
#include "node/code_cache.h"

#include "common/file_util.h"
#include "common/logging.h"

namespace lumen::node {
namespace {

bool IsSha256Hex(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

bool CodeCache::Wait(const std::string& key, Done done) {
  JobEntry& e = jobs_[key];
  if (e.done) {
    if (e.error.ok()) {
      done(e.paths);
    } else {
      done(e.error);
    }
    return false;
  }
  e.waiters.push_back(std::move(done));
  return e.waiters.size() == 1;  // else already fetching
}

void CodeCache::Resolve(const JobId& job, Done done) {
  const std::string key = job.Binary();
  if (!Wait(key, std::move(done))) return;
  proto::GetJobRequest req;
  req.set_job_id(job.Binary());
  gcs_->GetJob(req,
               [this, job, key](absl::Status s, proto::GetJobReply reply) {
                 if (!s.ok()) {
                   Finish(key, Annotate(s, "cannot look up job " + job.Hex()));
                   return;
                 }
                 std::vector<proto::CodeFile> files(reply.job().code().begin(),
                                                    reply.job().code().end());
                 FetchFiles(key, std::move(files), 0);
               },
               {.timeout_ms = 10'000, .retry_for_ms = 10'000});
}

void CodeCache::ResolveFiles(const std::string& key, std::vector<proto::CodeFile> files,
                             Done done) {
  if (Wait(key, std::move(done))) FetchFiles(key, std::move(files), 0);
}

void CodeCache::Forget(const JobId& job) { Forget(job.Binary()); }

void CodeCache::Forget(const std::string& key) {
  auto it = jobs_.find(key);
  if (it == jobs_.end()) return;
  std::vector<Done> waiters = std::move(it->second.waiters);
  jobs_.erase(it);
  for (auto& w : waiters) w(absl::CancelledError("its job finished"));
}

void CodeCache::FetchFiles(const std::string& job, std::vector<proto::CodeFile> files,
                           size_t next) {
  if (next == files.size()) {
    Finish(job, absl::OkStatus());
    return;
  }
  const proto::CodeFile& f = files[next];
  std::string name = f.name();
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    Finish(job, absl::InvalidArgumentError("bad code file name '" + name + "'"));
    return;
  }
  if (!IsSha256Hex(f.digest())) {
    Finish(job, absl::InvalidArgumentError("code file '" + name + "' has a bad digest '" +
                                           f.digest() + "' (want 64 lower-case hex digits)"));
    return;
  }
  std::string path = dir_ + "/" + f.digest() + "/" + name;
  if (FileExists(path)) {
    // A file already here is used only when it still is what its digest
    // says: anything else (a partial write, another user's file) is fetched
    // again and replaced.
    absl::StatusOr<std::string> have = ReadFile(path);
    if (have.ok() && Sha256Hex(*have) == f.digest()) {
      if (!jobs_.count(job)) return;
      jobs_[job].paths.push_back(path);
      FetchFiles(job, std::move(files), next + 1);
      return;
    }
    LUMEN_LOG_WARN("code cache: {} does not match its digest; fetching it again", path);
  }
  proto::KvGetRequest req;
  req.set_ns(rpc::kCodeKvNamespace);
  req.set_key(f.digest());
  gcs_->KvGet(
      req,
      [this, job, files = std::move(files), next, path](absl::Status s,
                                                        proto::KvGetReply reply) mutable {
        if (!jobs_.count(job)) return;  // forgotten meanwhile
        const proto::CodeFile& f = files[next];
        if (!s.ok() || !reply.found()) {
          Finish(job, absl::NotFoundError("code file " + f.name() + " is missing from the GCS" +
                                          (s.ok() ? "" : ": " + s.ToString())));
          return;
        }
        if (Sha256Hex(reply.value()) != f.digest()) {
          Finish(job, absl::DataLossError("code file " + f.name() + " does not match its digest"));
          return;
        }
        absl::Status w = MakeDirs(dir_ + "/" + f.digest());
        if (w.ok()) w = WriteFileAtomic(path, reply.value(), 0755);
        if (!w.ok()) {
          Finish(job, w);
          return;
        }
        jobs_[job].paths.push_back(path);
        FetchFiles(job, std::move(files), next + 1);
      },
      {.timeout_ms = 60'000, .retry_for_ms = 10'000});
}

void CodeCache::Finish(const std::string& job, absl::Status status) {
  auto found = jobs_.find(job);
  if (found == jobs_.end()) return;  // forgotten meanwhile
  JobEntry& e = found->second;
  e.done = true;
  e.error = status;
  if (!status.ok()) {
    e.paths.clear();
    LUMEN_LOG_WARN("a code package is unavailable: {}", status.ToString());
  }
  std::vector<Done> waiters = std::move(e.waiters);
  e.waiters.clear();
  std::vector<std::string> paths = e.paths;  // a waiter may Forget() the job
  for (auto& w : waiters) {
    if (status.ok()) {
      w(paths);
    } else {
      w(status);
    }
  }
}

}  // namespace lumen::node
