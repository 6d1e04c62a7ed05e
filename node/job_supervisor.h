// JobSupervisor: runs the drivers of jobs submitted with `lumen job submit`
// on this node (the head's node manager takes them) and keeps each job's
// record in the GCS KV (namespace kJobsNamespace, key = submission id), so
// `lumen job status|list` work from anywhere and after the submitter left.
//
// A job: PENDING while its --code files are fetched, RUNNING once its
// driver process started (its own session and process group; stdout and
// stderr to one log file in the session's logs/), then SUCCEEDED (exit 0),
// FAILED (any other end, with why) or STOPPED (lumen job stop: SIGTERM to
// its group, SIGKILL 5 s later). The driver registers with this node
// manager like any driver, so when it ends its workers and non-detached
// actors are cleaned up (node_manager.md). Runs on the node manager loop.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/process.h"
#include "lumen/id.h"
#include "node/code_cache.h"
#include "proto/node.pb.h"
#include "rpc/gcs_client.h"
#include "rpc/rpc.h"

namespace lumen::node {

inline constexpr char kJobsNamespace[] = "lumen_jobs";

struct JobSupervisorOptions {
  std::string gcs_address;  // given to drivers as LUMEN_ADDRESS
  std::string token;        // given to drivers as LUMEN_TOKEN
  std::string log_dir;      // job-<id>.log files
  NodeId node_id;
  int64_t stop_grace_ms = 5'000;
};

class JobSupervisor {
 public:
  JobSupervisor(JobSupervisorOptions options, rpc::GcsClient* gcs, CodeCache* code,
                ProcessLauncher* launcher, Clock* clock);

  void HandleSubmitJob(const proto::SubmitJobRequest& request, proto::SubmitJobReply* reply,
                       rpc::SendReply send);
  void HandleStopJob(const proto::StopJobRequest& request, proto::StopJobReply* reply,
                     rpc::SendReply send);
  void HandleReadJobLogs(const proto::ReadJobLogsRequest& request, proto::ReadJobLogsReply* reply,
                         rpc::SendReply send);
  // Reaps drivers that ended and kills those past their stop grace.
  void Tick();
  // The node is leaving: stops every driver (SIGKILL to its group).
  void Shutdown();

 private:
  struct Job {
    proto::JobSubmission record;
    std::unique_ptr<Process> process;
    bool stop_requested = false;
    int64_t kill_at_ms = 0;
  };
  void Start(const std::string& id, const std::vector<std::string>& code_paths);
  void End(const std::string& id, proto::JobSubmission::Status status, const std::string& message,
           int exit_code);
  void Record(const proto::JobSubmission& record);

  JobSupervisorOptions options_;
  rpc::GcsClient* gcs_;
  CodeCache* code_;
  ProcessLauncher* launcher_;
  Clock* clock_;
  std::map<std::string, Job> jobs_;  // not ended yet, by submission id
};

// A submission id is 1-128 of [A-Za-z0-9_.-]; the error says so.
absl::Status CheckSubmissionId(const std::string& id);
// The executable `command` names: a path (as is) or a name found in $PATH;
// NOT_FOUND saying where it looked.
absl::StatusOr<std::string> FindExecutable(const std::string& command);

}  // namespace lumen::node
