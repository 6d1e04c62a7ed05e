// ClusterState: the cluster's state as JSON, read from the GCS and the node
// managers with the cluster token. One implementation behind `lumen
// list|get|summary|job|logs` and the dashboard's HTTP API (dashboard/), so
// both show the same rows and say the same things when something is wrong.
//
// Errors carry a code an HTTP answer can use: INVALID_ARGUMENT (a bad
// filter, kind or id), NOT_FOUND (no such thing), FAILED_PRECONDITION (it
// exists but cannot do that now), UNAVAILABLE (the cluster did not answer;
// the message names its address). Thread-compatible: one per thread, or
// guard it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "proto/gcs.pb.h"
#include "proto/node.pb.h"
#include "rpc/gcs_client.h"
#include "rpc/node_manager_service.h"

namespace lumen::state {

using Json = nlohmann::json;

// Lower-case hex of bytes.
std::string Hex(const std::string& binary);

// One record each, as the CLI's --json and the HTTP API show it.
Json TaskJson(const proto::TaskRecord& r);
Json ActorJson(const proto::ActorInfo& a);
Json NodeJson(const proto::NodeInfo& n);
Json GroupJson(const proto::PlacementGroupInfo& g);
Json JobJson(const proto::JobInfo& j);
Json WorkerJson(const proto::WorkerRecord& w, const proto::NodeInfo& n);
Json SubmissionJson(const proto::JobSubmission& job);

// A submitted job's command line, its arguments joined by spaces.
std::string Entrypoint(const proto::JobSubmission& job);
bool JobEnded(const proto::JobSubmission& job);
// The last `lines` lines of `text` (all of it when it has fewer).
std::string LastLines(const std::string& text, int lines);

// What `lumen list` takes: the kind and the keys each can be filtered by.
const std::vector<std::string>& ListKinds();

class ClusterState {
 public:
  ClusterState(std::string gcs_address, std::string token, int64_t call_ms = 10'000);
  ~ClusterState();

  const std::string& address() const { return address_; }
  const std::string& token() const { return token_; }
  rpc::GcsClient* gcs() { return gcs_.get(); }

  struct Rows {
    Json rows = Json::array();
    std::string note;  // what the rows leave out (counts, nodes that did not answer)
  };
  // kind: one of ListKinds(); filters: KEY=VALUE; at most `limit` rows.
  absl::StatusOr<Rows> List(const std::string& kind, const std::vector<std::string>& filters,
                            int limit);
  // kind: task (its whole id), actor or node (an id or its first characters).
  absl::StatusOr<Json> Get(const std::string& kind, const std::string& id);
  // kind: tasks, actors or objects: {name: {state: count}} by function,
  // class or node. `note` gets the nodes that did not answer.
  absl::StatusOr<Json> Summary(const std::string& kind, const std::vector<std::string>& filters,
                               std::string* note);

  absl::StatusOr<std::vector<proto::NodeInfo>> Nodes();
  absl::StatusOr<std::vector<proto::ActorInfo>> Actors();
  absl::StatusOr<proto::ListTasksReply> Tasks(const proto::ListTasksRequest& request);
  // The node manager of `node` (binary id; the head's when empty), if alive.
  absl::StatusOr<std::unique_ptr<rpc::NodeManagerClient>> NodeManagerOf(const std::string& node);
  // Kills an actor named by its id or first characters, for good.
  absl::StatusOr<Json> KillActor(const std::string& id);

  // Jobs run by the head's supervisor (node/job_supervisor.h).
  absl::StatusOr<std::string> SubmitJob(const proto::SubmitJobRequest& request);
  // A job's record; one whose node is gone is said FAILED.
  absl::StatusOr<proto::JobSubmission> FindJob(const std::string& id);
  // Every job, the newest first.
  absl::StatusOr<std::vector<proto::JobSubmission>> Jobs();
  // false: it had already ended. The driver gets SIGTERM, SIGKILL later.
  absl::StatusOr<bool> StopJob(const std::string& id);
  // Forgets an ended job (FAILED_PRECONDITION while it runs).
  absl::Status DeleteJob(const std::string& id);
  // offset < 0: that many bytes before the end.
  absl::StatusOr<proto::ReadJobLogsReply> ReadJobLogs(const proto::JobSubmission& job,
                                                      int64_t offset);
  // The job's log from its start, up to `max_bytes`.
  absl::StatusOr<std::string> JobLog(const proto::JobSubmission& job, size_t max_bytes);

  // Where a log is: the node, and the worker (empty: the node manager's).
  struct LogPlace {
    std::string node;
    std::string worker;
  };
  enum class LogOf { kWorker, kTask, kActor, kNode };
  // `flag` names the id in errors ("--worker", "worker").
  absl::StatusOr<LogPlace> LocateLog(LogOf of, const std::string& id, const std::string& flag);
  // offset < 0: that many bytes before the end.
  absl::StatusOr<proto::ReadLogReply> ReadLog(const LogPlace& place, bool err, int64_t offset,
                                              int64_t max_bytes = 0);

 private:
  absl::Status Unreachable(const absl::Status& s) const;
  absl::StatusOr<std::optional<proto::JobSubmission>> LoadJob(const std::string& id);
  // Asks every live node manager; `note` gets the ones that did not answer.
  template <typename Reply, typename Call>
  std::vector<std::pair<proto::NodeInfo, Reply>> AskEveryNode(Call call, std::string* note);

  std::string address_;
  std::string token_;
  int64_t call_ms_;
  std::unique_ptr<rpc::GcsClient> gcs_;
};

}  // namespace lumen::state
