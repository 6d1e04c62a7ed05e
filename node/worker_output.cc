// Workers' stdout and stderr to their jobs' drivers (as Ray's log monitor
// does): every half second the node manager reads what each live worker
// appended to its log files, whole lines only, and sends them to the core
// worker of the job's driver, which prints them prefixed with the worker's
// pid and node. Bounded per tick; a driver that is gone or does not answer
// loses those lines (they stay in the files: lumen logs).
#include <string_view>

#include "common/file_util.h"
#include "common/logging.h"
#include "node/node_manager.h"

namespace lumen::node {
namespace {

constexpr int64_t kMaxBytesPerFile = 64 << 10;  // per worker stream and tick

// The worker runtime's own info and debug lines ("2026-12-07 10:00:00.123 I
// worker 42 file.cc:1] ...") stay in the file; its warnings and errors, and
// everything the user's code wrote, go to the driver.
bool RuntimeChatter(std::string_view line) {
  return line.size() > 32 && line[4] == '-' && line[10] == ' ' && line[19] == '.' &&
         (line.substr(23, 9) == " I worker" || line.substr(23, 9) == " D worker");
}

std::string WithoutChatter(std::string_view text) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    size_t end = nl == std::string::npos ? text.size() : nl + 1;
    std::string_view line = text.substr(start, end - start);
    if (!RuntimeChatter(line)) out.append(line);
    start = end;
  }
  return out;
}

}  // namespace

void NodeManager::ForwardWorkerOutput() {
  std::map<JobId, proto::PrintWorkerOutputRequest> batches;
  std::map<std::string, int64_t> still_there;
  for (const proto::WorkerRecord& w : pool_->Describe()) {
    JobId job = JobId::FromBinary(w.job_id());
    auto driver = job_drivers_.find(job);
    if (driver == job_drivers_.end()) {
      // Who the driver is, first: until then the worker's output waits in
      // its files.
      job_drivers_[job] = std::nullopt;
      proto::GetJobRequest req;
      req.set_job_id(job.Binary());
      gcs_->GetJob(req, [this, job](absl::Status s, proto::GetJobReply reply) {
        if (!s.ok()) {
          job_drivers_.erase(job);  // ask again next time
          return;
        }
        const proto::Address& d = reply.job().driver();
        job_drivers_[job] = reply.job().finished() || d.port() == 0
                                ? std::string()
                                : rpc::JoinHostPort(d.host(), d.port());
      });
      continue;
    }
    if (!driver->second.has_value()) continue;  // still asking
    for (bool err : {false, true}) {
      const std::string path = w.log_prefix() + (err ? ".err" : ".out");
      int64_t offset = offsets_.count(path) ? offsets_[path] : 0;
      absl::StatusOr<FileRange> got = ReadFileRange(path, offset, kMaxBytesPerFile);
      if (!got.ok()) continue;
      if (got->size < offset) {  // rotated: start again
        offset = 0;
        got = ReadFileRange(path, 0, kMaxBytesPerFile);
        if (!got.ok()) continue;
      }
      std::string& data = got->data;
      size_t whole = data.rfind('\n');
      size_t take = whole == std::string::npos ? 0 : whole + 1;
      if (take == 0 && static_cast<int64_t>(data.size()) == kMaxBytesPerFile) take = data.size();
      still_there[path] = offset + static_cast<int64_t>(take);
      if (take == 0 || driver->second->empty()) continue;  // nothing whole, or nobody to tell
      std::string text = WithoutChatter(std::string_view(data).substr(0, take));
      if (!text.empty() && text.back() == '\n') text.pop_back();
      if (text.empty()) continue;
      proto::WorkerOutput* o = batches[job].add_outputs();
      o->set_worker_id(w.worker_id());
      o->set_pid(w.pid());
      o->set_node_id(node_id_.Binary());
      o->set_stderr(err);
      o->set_text(std::move(text));
    }
  }
  offsets_ = std::move(still_there);  // workers gone are forgotten
  for (auto& [job, batch] : batches) {
    const std::string& address = *job_drivers_[job];
    worker_clients_.Get(address)->PrintWorkerOutput(
        batch,
        [](absl::Status s, proto::PrintWorkerOutputReply) {
          if (!s.ok()) LUMEN_LOG_DEBUG("worker output not delivered: {}", s.ToString());
        },
        {.timeout_ms = 5'000});
  }
}

}  // namespace lumen::node
