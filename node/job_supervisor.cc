// Submitted jobs' drivers; see job_supervisor.h.
#include "node/job_supervisor.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status.h"

namespace lumen::node {
namespace {

constexpr int64_t kDefaultLogChunk = int64_t{1} << 20;
constexpr int64_t kMaxLogChunk = int64_t{4} << 20;
constexpr size_t kMaxArgs = 4'096;
constexpr size_t kMaxEnv = 1'024;

std::string CodeKey(const std::string& id) { return "job-submission/" + id; }

}  // namespace

absl::Status CheckSubmissionId(const std::string& id) {
  bool ok = !id.empty() && id.size() <= 128;
  for (char c : id) {
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.');
  }
  if (!ok) {
    return absl::InvalidArgumentError("submission id '" + id.substr(0, 128) +
                                      "': use 1-128 letters, digits, '_', '-' or '.'");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> FindExecutable(const std::string& command) {
  auto runnable = [](const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           ::access(path.c_str(), X_OK) == 0;
  };
  if (command.find('/') != std::string::npos) {
    if (runnable(command)) return command;
    return absl::NotFoundError("the job's command '" + command +
                               "' is not an executable file on the head node");
  }
  const char* path_env = std::getenv("PATH");
  std::string path = path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    std::string candidate = std::string(dir) + "/" + command;
    if (runnable(candidate)) return candidate;
  }
  return absl::NotFoundError("the job's command '" + command +
                             "' is not found on the head node (looked in PATH=" + path +
                             "); give its full path");
}

JobSupervisor::JobSupervisor(JobSupervisorOptions options, rpc::GcsClient* gcs, CodeCache* code,
                             ProcessLauncher* launcher, Clock* clock)
    : options_(std::move(options)), gcs_(gcs), code_(code), launcher_(launcher), clock_(clock) {}

void JobSupervisor::Record(const proto::JobSubmission& record) {
  proto::KvPutRequest put;
  put.set_ns(kJobsNamespace);
  put.set_key(record.submission_id());
  put.set_value(record.SerializeAsString());
  put.set_overwrite(true);
  gcs_->KvPut(put,
              [id = record.submission_id()](absl::Status s, proto::KvPutReply) {
                if (!s.ok())
                  LUMEN_LOG_WARN("job {}: its record was not saved: {}", id, s.ToString());
              },
              {.timeout_ms = 10'000, .retry_for_ms = 30'000});
}

void JobSupervisor::HandleSubmitJob(const proto::SubmitJobRequest& request,
                                    proto::SubmitJobReply* reply, rpc::SendReply send) {
  proto::JobSubmission job = request.job();
  if (job.argv_size() == 0 || job.argv(0).empty()) {
    send(absl::InvalidArgumentError("the job has no command: `lumen job submit -- CMD ARGS`"));
    return;
  }
  if (static_cast<size_t>(job.argv_size()) > kMaxArgs ||
      static_cast<size_t>(job.env_size()) > kMaxEnv) {
    send(absl::InvalidArgumentError("the job has more than " + std::to_string(kMaxArgs) +
                                    " arguments or " + std::to_string(kMaxEnv) +
                                    " environment variables"));
    return;
  }
  for (const auto& [k, v] : job.env()) {
    if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos ||
        v.find('\0') != std::string::npos) {
      send(absl::InvalidArgumentError("environment variable '" + k +
                                      "': give NAME=VALUE, NAME without '='"));
      return;
    }
  }
  for (const auto& a : job.argv()) {
    if (a.find('\0') != std::string::npos) {
      send(absl::InvalidArgumentError("the job's arguments may not hold NUL bytes"));
      return;
    }
  }
  absl::StatusOr<std::string> exe = FindExecutable(job.argv(0));
  if (!exe.ok()) {
    send(exe.status());
    return;
  }
  if (job.submission_id().empty()) job.set_submission_id("lumenjob_" + RandomHex(8));
  if (absl::Status s = CheckSubmissionId(job.submission_id()); !s.ok()) {
    send(s);
    return;
  }
  job.set_status(proto::JobSubmission::PENDING);
  job.set_submit_time_ms(clock_->WallMs());
  job.set_node_id(options_.node_id.Binary());
  job.set_log_path(options_.log_dir + "/job-" + job.submission_id() + ".log");
  job.clear_message();
  job.set_driver_pid(0);
  job.set_exit_code(0);
  // The record first, added only if the id is new: two submissions of one
  // id cannot both run.
  proto::KvPutRequest put;
  put.set_ns(kJobsNamespace);
  put.set_key(job.submission_id());
  put.set_value(job.SerializeAsString());
  put.set_overwrite(false);
  gcs_->KvPut(
      put,
      [this, job, exe = *exe, reply, send = std::move(send)](absl::Status s,
                                                             proto::KvPutReply put_reply) mutable {
        if (!s.ok()) {
          send(Annotate(s, "cannot record the job in the GCS"));
          return;
        }
        if (!put_reply.added() || jobs_.count(job.submission_id())) {
          send(absl::AlreadyExistsError("a job with submission id '" + job.submission_id() +
                                        "' exists already (lumen job list)"));
          return;
        }
        const std::string id = job.submission_id();
        job.set_argv(0, exe);
        std::vector<proto::CodeFile> code(job.code().begin(), job.code().end());
        jobs_[id].record = std::move(job);
        reply->set_submission_id(id);
        send(absl::OkStatus());
        LUMEN_LOG_INFO("job {} submitted: {}", id, absl::StrJoin(jobs_[id].record.argv(), " "));
        code_->ResolveFiles(
            CodeKey(id), std::move(code),
            [this, id](absl::StatusOr<std::vector<std::string>> paths) {
              if (!jobs_.count(id)) return;  // stopped meanwhile
              if (!paths.ok()) {
                End(id, proto::JobSubmission::FAILED,
                    "its code could not be fetched: " + std::string(paths.status().message()), 0);
                return;
              }
              Start(id, *paths);
            });
      },
      {.timeout_ms = 10'000, .retry_for_ms = 10'000});
}

void JobSupervisor::Start(const std::string& id, const std::vector<std::string>& code_paths) {
  Job& job = jobs_[id];
  proto::JobSubmission& r = job.record;
  ProcessSpec spec;
  spec.argv.assign(r.argv().begin(), r.argv().end());
  spec.env = {{"LUMEN_ADDRESS", options_.gcs_address},
              {"LUMEN_TOKEN", options_.token},
              {"LUMEN_JOB_SUBMISSION_ID", id}};
  if (!code_paths.empty()) spec.env.push_back({"LUMEN_CODE_PATHS", absl::StrJoin(code_paths, ":")});
  for (const auto& [k, v] : std::map<std::string, std::string>(r.env().begin(), r.env().end())) {
    spec.env.push_back({k, v});
  }
  spec.stdout_path = r.log_path();
  spec.stderr_path = r.log_path();
  spec.new_session = true;  // its own process group: stop reaches what it started
  if (absl::Status dir = MakeDirs(options_.log_dir, 0700); !dir.ok()) {
    End(id, proto::JobSubmission::FAILED, "cannot make its log folder: " + dir.ToString(), 0);
    return;
  }
  auto process = launcher_->Launch(spec);
  if (!process.ok()) {
    End(id, proto::JobSubmission::FAILED,
        "its driver could not start: " + std::string(process.status().message()), 0);
    return;
  }
  job.process = std::move(*process);
  r.set_status(proto::JobSubmission::RUNNING);
  r.set_start_time_ms(clock_->WallMs());
  r.set_driver_pid(job.process->pid());
  Record(r);
  LUMEN_LOG_INFO("job {} running: pid {}", id, job.process->pid());
}

void JobSupervisor::End(const std::string& id, proto::JobSubmission::Status status,
                        const std::string& message, int exit_code) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  proto::JobSubmission& r = it->second.record;
  r.set_status(status);
  r.set_message(message);
  r.set_exit_code(exit_code);
  r.set_end_time_ms(clock_->WallMs());
  Record(r);
  LUMEN_LOG_INFO("job {} {}: {}", id, proto::JobSubmission::Status_Name(status), message);
  code_->Forget(CodeKey(id));
  jobs_.erase(it);
}

void JobSupervisor::Tick() {
  const int64_t now = clock_->NowMs();
  std::vector<std::string> ended;
  for (auto& [id, job] : jobs_) {
    if (!job.process) continue;
    if (job.stop_requested && job.kill_at_ms > 0 && now >= job.kill_at_ms) {
      ::kill(-job.process->pid(), SIGKILL);
      job.kill_at_ms = 0;
    }
    if (job.process->TryReap()) ended.push_back(id);
  }
  for (const auto& id : ended) {
    Job& job = jobs_[id];
    int status = job.process->exit_status();
    // What it left in its group goes with it.
    ::kill(-job.process->pid(), SIGKILL);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (job.stop_requested) {
      End(id, proto::JobSubmission::STOPPED, "stopped by `lumen job stop`", code);
    } else if (WIFEXITED(status) && code == 0) {
      End(id, proto::JobSubmission::SUCCEEDED, "", 0);
    } else {
      End(id, proto::JobSubmission::FAILED,
          "its driver ended: " + job.process->DescribeExit() + " (lumen job logs " + id + ")",
          code);
    }
  }
}

void JobSupervisor::HandleStopJob(const proto::StopJobRequest& request, proto::StopJobReply* reply,
                                  rpc::SendReply send) {
  const std::string id = request.submission_id();
  auto it = jobs_.find(id);
  if (it != jobs_.end()) {
    Job& job = it->second;
    reply->set_stopped(true);
    if (!job.process) {  // still fetching its code
      End(id, proto::JobSubmission::STOPPED, "stopped by `lumen job stop` before it started", 0);
    } else if (!job.stop_requested) {
      job.stop_requested = true;
      job.kill_at_ms = clock_->NowMs() + options_.stop_grace_ms;
      ::kill(-job.process->pid(), SIGTERM);
    }
    send(absl::OkStatus());
    return;
  }
  proto::KvGetRequest get;
  get.set_ns(kJobsNamespace);
  get.set_key(id);
  gcs_->KvGet(get,
              [id, send = std::move(send)](absl::Status s, proto::KvGetReply got) {
                if (!s.ok()) {
                  send(s);
                } else if (!got.found()) {
                  send(absl::NotFoundError("no job '" + id + "' (lumen job list shows them)"));
                } else {
                  send(absl::OkStatus());  // it ended already: stopped stays false
                }
              },
              {.timeout_ms = 10'000});
}

void JobSupervisor::HandleReadJobLogs(const proto::ReadJobLogsRequest& request,
                                      proto::ReadJobLogsReply* reply, rpc::SendReply send) {
  const std::string id = request.submission_id();
  // < 0: that many bytes before the end (a tail).
  const int64_t offset = request.offset();
  const int64_t max_bytes = request.max_bytes() <= 0
                                ? kDefaultLogChunk
                                : std::min<int64_t>(request.max_bytes(), kMaxLogChunk);
  auto read = [id, offset, max_bytes, reply](const std::string& path, bool ended) -> absl::Status {
    absl::StatusOr<FileRange> got = ReadFileRange(path, offset, max_bytes);
    if (!got.ok()) {
      return absl::NotFoundError("the log of job " + id + " is gone (it was " + path +
                                 " on the node that ran it)");
    }
    reply->set_next_offset(got->next_offset);
    reply->set_ended(ended && got->next_offset == got->size);
    reply->set_data(std::move(got->data));
    return absl::OkStatus();
  };
  if (auto it = jobs_.find(id); it != jobs_.end()) {
    if (!it->second.process) {  // not started yet: nothing written
      reply->set_next_offset(std::max<int64_t>(0, offset));
      send(absl::OkStatus());
      return;
    }
    send(read(it->second.record.log_path(), false));
    return;
  }
  proto::KvGetRequest get;
  get.set_ns(kJobsNamespace);
  get.set_key(id);
  gcs_->KvGet(get,
              [this, id, read, send = std::move(send)](absl::Status s, proto::KvGetReply got) {
                proto::JobSubmission record;
                if (!s.ok()) {
                  send(s);
                } else if (!got.found() || !record.ParseFromString(got.value())) {
                  send(absl::NotFoundError("no job '" + id + "' (lumen job list shows them)"));
                } else if (record.node_id() != options_.node_id.Binary()) {
                  send(absl::FailedPreconditionError(
                      "job " + id + " ran on another node, whose manager keeps its log"));
                } else {
                  // Not running here: it ended (or its supervisor was another
                  // process of this node, now gone).
                  send(read(record.log_path(), true));
                }
              },
              {.timeout_ms = 10'000});
}

void JobSupervisor::Shutdown() {
  for (auto& [id, job] : jobs_) {
    if (job.process) {
      ::kill(-job.process->pid(), SIGKILL);
      job.process->WaitForExit(1'000);
    }
  }
  std::vector<std::string> ids;
  for (const auto& [id, job] : jobs_) ids.push_back(id);
  for (const auto& id : ids) {
    End(id, proto::JobSubmission::STOPPED, "its node manager stopped", -1);
  }
}

}  // namespace lumen::node
