// `lumen job submit|status|logs|stop|list|delete`: drivers run on the
// cluster by the head's node manager (node/job_supervisor.h), their records
// in the GCS KV. `lumen logs`: any worker's, task's, actor's, job's or node
// manager's log, read from the node that has it (ReadLog).
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <thread>

#include "cli/commands.h"
#include "common/file_util.h"
#include "common/status.h"
#include "lumen/id.h"
#include "nlohmann/json.hpp"
#include "state/state_api.h"
#include "worker/code_package.h"

namespace lumen::cli {
namespace {

using Json = nlohmann::json;
using state::ClusterState;

absl::StatusOr<std::unique_ptr<ClusterState>> Connect(const std::string& address_flag,
                                                      const std::string& token_flag) {
  auto address = ClusterAddress(address_flag);
  if (!address.ok()) return address.status();
  return std::make_unique<ClusterState>(*address, ResolveToken(token_flag));
}

std::string Time(int64_t ms) { return UtcTime(ms, "%Y-%m-%d %H:%M:%S"); }

int CallFailed(const absl::Status& s) { return Fail(std::string(s.message())); }

// Prints the job's log from `offset` until it ends (follow) or once.
absl::Status PrintLogs(ClusterState& c, const proto::JobSubmission& job, bool follow) {
  int64_t offset = 0;
  while (true) {
    LUMEN_ASSIGN_OR_RETURN(auto got, c.ReadJobLogs(job, offset));
    std::cout << got.data() << std::flush;
    bool more = got.next_offset() > offset;
    offset = got.next_offset();
    if (!follow || got.ended()) return absl::OkStatus();
    if (!more) std::this_thread::sleep_for(std::chrono::milliseconds(250));  // polling a file
  }
}

}  // namespace

int JobSubmit(const JobFlags& f) {
  if (f.command.empty()) return Fail("say what to run: lumen job submit [options] -- CMD ARGS");
  auto c = Connect(f.address, f.token);
  if (!c.ok()) return CallFailed(c.status());
  proto::SubmitJobRequest req;
  proto::JobSubmission* job = req.mutable_job();
  for (const auto& a : f.command) job->add_argv(a);
  // A relative path is from where this command runs (the head's node
  // manager runs elsewhere).
  if (f.command[0].find('/') != std::string::npos && f.command[0][0] != '/') {
    std::error_code ec;
    job->set_argv(0, std::filesystem::absolute(f.command[0], ec).lexically_normal().string());
  }
  job->set_submission_id(f.submission_id);
  for (const auto& e : f.env) {
    size_t eq = e.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Fail("--env " + e + ": give NAME=VALUE");
    }
    (*job->mutable_env())[e.substr(0, eq)] = e.substr(eq + 1);
  }
  if (!f.code.empty()) {
    for (const auto& path : f.code) {
      if (!FileExists(path)) return Fail("--code " + path + ": no such file");
    }
    auto code = worker::UploadCodePackage((*c)->gcs(), f.code);
    if (!code.ok()) return Fail("--code: " + std::string(code.status().message()));
    for (const auto& file : *code) *job->add_code() = file;
  }
  auto submitted = (*c)->SubmitJob(req);
  if (!submitted.ok()) return CallFailed(submitted.status());
  const std::string id = *submitted;
  std::cout << "submitted job " << id << "\n";
  if (f.no_wait) {
    std::cout << "  lumen job status " << id << "\n  lumen job logs " << id << " --follow\n";
    return 0;
  }
  std::cout << "------ its output ------" << std::endl;
  auto head = (*c)->FindJob(id);
  if (!head.ok()) return CallFailed(head.status());
  if (absl::Status s = PrintLogs(**c, *head, true); !s.ok()) return CallFailed(s);
  // The record catches up with the end of the log within moments.
  proto::JobSubmission last = *head;
  for (int i = 0; i < 100; ++i) {
    auto now = (*c)->FindJob(id);
    if (!now.ok()) return CallFailed(now.status());
    last = *now;
    if (state::JobEnded(last)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::cout << "------ job " << id << " " << proto::JobSubmission::Status_Name(last.status())
            << (last.message().empty() ? "" : ": " + last.message()) << " ------\n";
  return last.status() == proto::JobSubmission::SUCCEEDED ? 0 : 1;
}

int JobStatus(const JobFlags& f) {
  auto c = Connect(f.address, f.token);
  if (!c.ok()) return CallFailed(c.status());
  auto job = (*c)->FindJob(f.id);
  if (!job.ok()) return CallFailed(job.status());
  if (f.json) {
    std::cout << state::SubmissionJson(*job).dump(2) << "\n";
    return 0;
  }
  std::cout << "job " << job->submission_id() << ": "
            << proto::JobSubmission::Status_Name(job->status())
            << (job->message().empty() ? "" : " (" + job->message() + ")") << "\n"
            << "  entrypoint: " << state::Entrypoint(*job) << "\n"
            << "  submitted:  " << Time(job->submit_time_ms()) << "\n"
            << "  started:    " << Time(job->start_time_ms()) << "\n"
            << "  ended:      " << Time(job->end_time_ms()) << "\n"
            << "  driver pid: " << job->driver_pid() << " on node "
            << NodeId::FromBinary(job->node_id()).Hex().substr(0, 12) << "\n";
  return 0;
}

int JobLogs(const JobFlags& f) {
  auto c = Connect(f.address, f.token);
  if (!c.ok()) return CallFailed(c.status());
  auto job = (*c)->FindJob(f.id);
  if (!job.ok()) return CallFailed(job.status());
  if (absl::Status s = PrintLogs(**c, *job, f.follow); !s.ok()) return CallFailed(s);
  return 0;
}

int JobStop(const JobFlags& f) {
  auto c = Connect(f.address, f.token);
  if (!c.ok()) return CallFailed(c.status());
  auto stopping = (*c)->StopJob(f.id);
  if (!stopping.ok()) return CallFailed(stopping.status());
  if (!*stopping) {
    auto job = (*c)->FindJob(f.id);
    std::cout << "job " << f.id << " already ended"
              << (job.ok() ? ": " + proto::JobSubmission::Status_Name(job->status()) : "") << "\n";
    return 0;
  }
  // SIGTERM now, SIGKILL after 5 s: wait for the record to say it ended.
  for (int i = 0; i < 150; ++i) {
    auto now = (*c)->FindJob(f.id);
    if (now.ok() && state::JobEnded(*now)) {
      std::cout << "job " << f.id << " " << proto::JobSubmission::Status_Name(now->status())
                << "\n";
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return Fail("job " + f.id + " was asked to stop but has not ended yet (lumen job status)");
}

int JobList(const JobFlags& f) {
  auto c = Connect(f.address, f.token);
  if (!c.ok()) return CallFailed(c.status());
  auto jobs = (*c)->Jobs();
  if (!jobs.ok()) return CallFailed(jobs.status());
  if (f.json) {
    Json out = Json::array();
    for (const auto& j : *jobs) out.push_back(state::SubmissionJson(j));
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << std::left << std::setw(28) << "SUBMISSION_ID" << std::setw(11) << "STATUS"
            << std::setw(21) << "SUBMITTED"
            << "ENTRYPOINT\n";
  for (const auto& j : *jobs) {
    std::cout << std::setw(28) << j.submission_id() << std::setw(11)
              << proto::JobSubmission::Status_Name(j.status()) << std::setw(21)
              << Time(j.submit_time_ms()) << state::Entrypoint(j).substr(0, 60)
              << (j.message().empty() ? "" : "  (" + j.message() + ")") << "\n";
  }
  std::cout << jobs->size() << " job" << (jobs->size() == 1 ? "" : "s") << "\n";
  return 0;
}

int JobDelete(const JobFlags& f) {
  auto c = Connect(f.address, f.token);
  if (!c.ok()) return CallFailed(c.status());
  if (absl::Status s = (*c)->DeleteJob(f.id); !s.ok()) return CallFailed(s);
  std::cout << "job " << f.id << " deleted (its log stays on its node)\n";
  return 0;
}

int Logs(const LogFlags& f) {
  if (f.worker.empty() && f.task.empty() && f.actor.empty() && f.job.empty() && f.node.empty()) {
    return Fail("say whose log: --worker, --task, --actor, --job or --node ID");
  }
  if (!f.job.empty()) {
    JobFlags j;
    j.address = f.address;
    j.token = f.token;
    j.id = f.job;
    j.follow = f.follow;
    return JobLogs(j);
  }
  auto c = Connect(f.address, f.token);
  if (!c.ok()) return CallFailed(c.status());
  using LogOf = ClusterState::LogOf;
  auto place = !f.node.empty()    ? (*c)->LocateLog(LogOf::kNode, f.node, "--node")
               : !f.task.empty()  ? (*c)->LocateLog(LogOf::kTask, f.task, "--task")
               : !f.actor.empty() ? (*c)->LocateLog(LogOf::kActor, f.actor, "--actor")
                                  : (*c)->LocateLog(LogOf::kWorker, f.worker, "--worker");
  if (!place.ok()) return CallFailed(place.status());
  int64_t offset = 0;
  bool first = true;
  while (true) {
    // --tail: the last lines of the last MiB.
    auto got = (*c)->ReadLog(*place, f.err, first && f.tail > 0 ? -(int64_t{1} << 20) : offset);
    if (!got.ok()) return CallFailed(got.status());
    std::cout << (first ? state::LastLines(got->data(), f.tail) : got->data()) << std::flush;
    first = false;
    bool more = got->next_offset() > offset;
    offset = got->next_offset();
    if (!f.follow || (!got->running() && !more)) return 0;
    if (!more) std::this_thread::sleep_for(std::chrono::milliseconds(250));  // polling a file
  }
}

}  // namespace lumen::cli
