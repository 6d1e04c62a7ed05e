// `lumen job submit|status|logs|stop|list|delete`: drivers run on the
// cluster by the head's node manager (node/job_supervisor.h), their records
// in the GCS KV. `lumen logs`: any worker's, task's, actor's, job's or node
// manager's log, read from the node that has it (ReadLog).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "cli/commands.h"
#include "common/file_util.h"
#include "common/status.h"
#include "lumen/id.h"
#include "nlohmann/json.hpp"
#include "node/job_supervisor.h"
#include "rpc/gcs_client.h"
#include "rpc/node_manager_service.h"
#include "rpc/rpc.h"
#include "worker/code_package.h"

namespace lumen::cli {
namespace {

using Json = nlohmann::json;
constexpr int64_t kCallMs = 10'000;

struct Cluster {
  std::string address;
  std::string token;
  std::unique_ptr<rpc::GcsClient> gcs;
};

absl::StatusOr<Cluster> Connect(const std::string& address_flag, const std::string& token_flag) {
  auto address = ClusterAddress(address_flag);
  if (!address.ok()) return address.status();
  std::string token = ResolveToken(token_flag);
  return Cluster{*address, token, std::make_unique<rpc::GcsClient>(*address, token, nullptr)};
}

absl::StatusOr<std::vector<proto::NodeInfo>> AllNodes(const Cluster& c) {
  auto got = rpc::CallSync<proto::GetAllNodesReply>([&](auto cb) {
    c.gcs->GetAllNodes(proto::GetAllNodesRequest(), cb, {.timeout_ms = kCallMs});
  });
  if (!got.ok()) {
    return absl::UnavailableError("cannot reach the cluster at " + c.address + ": " +
                                  std::string(got.status().message()));
  }
  return std::vector<proto::NodeInfo>(got->nodes().begin(), got->nodes().end());
}

// The node manager of `node` (the head's when empty), if alive.
absl::StatusOr<std::unique_ptr<rpc::NodeManagerClient>> NodeManagerOf(const Cluster& c,
                                                                      const std::string& node) {
  LUMEN_ASSIGN_OR_RETURN(auto nodes, AllNodes(c));
  for (const auto& n : nodes) {
    if (n.state() != proto::NodeInfo::ALIVE) continue;
    if (node.empty() ? n.is_head() : n.node_id() == node) {
      return std::make_unique<rpc::NodeManagerClient>(
          rpc::JoinHostPort(n.address().host(), n.address().port()), c.token, nullptr);
    }
  }
  return absl::UnavailableError(node.empty() ? "the cluster has no live head node to run jobs"
                                             : "the node that ran this job is gone");
}

absl::StatusOr<std::optional<proto::JobSubmission>> Load(const Cluster& c, const std::string& id) {
  proto::KvGetRequest req;
  req.set_ns(node::kJobsNamespace);
  req.set_key(id);
  auto got = rpc::CallSync<proto::KvGetReply>(
      [&](auto cb) { c.gcs->KvGet(req, cb, {.timeout_ms = kCallMs}); });
  if (!got.ok()) return got.status();
  if (!got->found()) return std::optional<proto::JobSubmission>();
  proto::JobSubmission job;
  if (!job.ParseFromString(got->value())) {
    return absl::DataLossError("the record of job " + id + " does not parse");
  }
  return std::optional<proto::JobSubmission>(std::move(job));
}

// A job whose node is gone cannot end by itself: say so when reading it.
void Settle(proto::JobSubmission* job, const std::vector<proto::NodeInfo>& nodes) {
  if (job->status() != proto::JobSubmission::PENDING &&
      job->status() != proto::JobSubmission::RUNNING) {
    return;
  }
  for (const auto& n : nodes) {
    if (n.node_id() == job->node_id() && n.state() == proto::NodeInfo::ALIVE) return;
  }
  job->set_status(proto::JobSubmission::FAILED);
  job->set_message("the node running it is gone");
}

absl::StatusOr<proto::JobSubmission> Find(const Cluster& c, const std::string& id) {
  if (absl::Status s = node::CheckSubmissionId(id); !s.ok()) return s;
  LUMEN_ASSIGN_OR_RETURN(auto job, Load(c, id));
  if (!job) return absl::NotFoundError("no job '" + id + "' (lumen job list shows them)");
  LUMEN_ASSIGN_OR_RETURN(auto nodes, AllNodes(c));
  Settle(&*job, nodes);
  return *job;
}

std::string Time(int64_t ms) { return UtcTime(ms, "%Y-%m-%d %H:%M:%S"); }

std::string Entrypoint(const proto::JobSubmission& job) {
  std::string out;
  for (const auto& a : job.argv()) out += (out.empty() ? "" : " ") + a;
  return out;
}

bool Ended(const proto::JobSubmission& job) {
  return job.status() == proto::JobSubmission::SUCCEEDED ||
         job.status() == proto::JobSubmission::FAILED ||
         job.status() == proto::JobSubmission::STOPPED;
}

Json ToJson(const proto::JobSubmission& job) {
  Json metadata = Json::object();
  for (const auto& [k, v] : job.metadata()) metadata[k] = v;
  return {{"submission_id", job.submission_id()},
          {"status", proto::JobSubmission::Status_Name(job.status())},
          {"entrypoint", Entrypoint(job)},
          {"message", job.message()},
          {"submit_time_ms", job.submit_time_ms()},
          {"start_time_ms", job.start_time_ms()},
          {"end_time_ms", job.end_time_ms()},
          {"driver_pid", job.driver_pid()},
          {"exit_code", job.exit_code()},
          {"node_id", NodeId::FromBinary(job.node_id()).Hex()},
          {"log_path", job.log_path()},
          {"metadata", metadata}};
}

int CallFailed(const absl::Status& s) { return Fail(std::string(s.message())); }

// Prints the job's log from `offset` until it ends (follow) or once.
absl::Status PrintLogs(const Cluster& c, const proto::JobSubmission& job, bool follow) {
  LUMEN_ASSIGN_OR_RETURN(auto nm, NodeManagerOf(c, job.node_id()));
  int64_t offset = 0;
  while (true) {
    proto::ReadJobLogsRequest req;
    req.set_submission_id(job.submission_id());
    req.set_offset(offset);
    auto got = rpc::CallSync<proto::ReadJobLogsReply>(
        [&](auto cb) { nm->ReadJobLogs(req, cb, {.timeout_ms = kCallMs}); });
    if (!got.ok()) return got.status();
    std::cout << got->data() << std::flush;
    bool more = got->next_offset() > offset;
    offset = got->next_offset();
    if (!follow || got->ended()) return absl::OkStatus();
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
    auto code = worker::UploadCodePackage(c->gcs.get(), f.code);
    if (!code.ok()) return Fail("--code: " + std::string(code.status().message()));
    for (const auto& file : *code) *job->add_code() = file;
  }
  auto nm = NodeManagerOf(*c, "");
  if (!nm.ok()) return CallFailed(nm.status());
  auto submitted = rpc::CallSync<proto::SubmitJobReply>(
      [&](auto cb) { (*nm)->SubmitJob(req, cb, {.timeout_ms = 30'000}); });
  if (!submitted.ok())
    return Fail("job not submitted: " + std::string(submitted.status().message()));
  const std::string id = submitted->submission_id();
  std::cout << "submitted job " << id << "\n";
  if (f.no_wait) {
    std::cout << "  lumen job status " << id << "\n  lumen job logs " << id << " --follow\n";
    return 0;
  }
  std::cout << "------ its output ------" << std::endl;
  auto head = Find(*c, id);
  if (!head.ok()) return CallFailed(head.status());
  if (absl::Status s = PrintLogs(*c, *head, true); !s.ok()) return CallFailed(s);
  // The record catches up with the end of the log within moments.
  proto::JobSubmission last = *head;
  for (int i = 0; i < 100; ++i) {
    auto now = Find(*c, id);
    if (!now.ok()) return CallFailed(now.status());
    last = *now;
    if (Ended(last)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::cout << "------ job " << id << " " << proto::JobSubmission::Status_Name(last.status())
            << (last.message().empty() ? "" : ": " + last.message()) << " ------\n";
  return last.status() == proto::JobSubmission::SUCCEEDED ? 0 : 1;
}

int JobStatus(const JobFlags& f) {
  auto c = Connect(f.address, f.token);
  if (!c.ok()) return CallFailed(c.status());
  auto job = Find(*c, f.id);
  if (!job.ok()) return CallFailed(job.status());
  if (f.json) {
    std::cout << ToJson(*job).dump(2) << "\n";
    return 0;
  }
  std::cout << "job " << job->submission_id() << ": "
            << proto::JobSubmission::Status_Name(job->status())
            << (job->message().empty() ? "" : " (" + job->message() + ")") << "\n"
            << "  entrypoint: " << Entrypoint(*job) << "\n"
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
  auto job = Find(*c, f.id);
  if (!job.ok()) return CallFailed(job.status());
  if (absl::Status s = PrintLogs(*c, *job, f.follow); !s.ok()) return CallFailed(s);
  return 0;
}

int JobStop(const JobFlags& f) {
  auto c = Connect(f.address, f.token);
  if (!c.ok()) return CallFailed(c.status());
  auto job = Find(*c, f.id);
  if (!job.ok()) return CallFailed(job.status());
  if (Ended(*job)) {
    std::cout << "job " << f.id
              << " already ended: " << proto::JobSubmission::Status_Name(job->status()) << "\n";
    return 0;
  }
  auto nm = NodeManagerOf(*c, job->node_id());
  if (!nm.ok()) return CallFailed(nm.status());
  proto::StopJobRequest req;
  req.set_submission_id(f.id);
  auto stopped = rpc::CallSync<proto::StopJobReply>(
      [&](auto cb) { (*nm)->StopJob(req, cb, {.timeout_ms = kCallMs}); });
  if (!stopped.ok()) return CallFailed(stopped.status());
  // SIGTERM now, SIGKILL after 5 s: wait for the record to say it ended.
  for (int i = 0; i < 150; ++i) {
    auto now = Find(*c, f.id);
    if (now.ok() && Ended(*now)) {
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
  proto::KvKeysRequest keys_req;
  keys_req.set_ns(node::kJobsNamespace);
  auto keys = rpc::CallSync<proto::KvKeysReply>(
      [&](auto cb) { c->gcs->KvKeys(keys_req, cb, {.timeout_ms = kCallMs}); });
  if (!keys.ok())
    return Fail("cannot reach the cluster at " + c->address + ": " +
                std::string(keys.status().message()));
  auto nodes = AllNodes(*c);
  if (!nodes.ok()) return CallFailed(nodes.status());
  std::vector<proto::JobSubmission> jobs;
  for (const auto& key : keys->keys()) {
    auto job = Load(*c, key);
    if (!job.ok()) return CallFailed(job.status());
    if (!*job) continue;  // deleted meanwhile
    Settle(&**job, *nodes);
    jobs.push_back(std::move(**job));
  }
  std::sort(jobs.begin(), jobs.end(),
            [](const auto& a, const auto& b) { return a.submit_time_ms() > b.submit_time_ms(); });
  if (f.json) {
    Json out = Json::array();
    for (const auto& j : jobs) out.push_back(ToJson(j));
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << std::left << std::setw(28) << "SUBMISSION_ID" << std::setw(11) << "STATUS"
            << std::setw(21) << "SUBMITTED"
            << "ENTRYPOINT\n";
  for (const auto& j : jobs) {
    std::cout << std::setw(28) << j.submission_id() << std::setw(11)
              << proto::JobSubmission::Status_Name(j.status()) << std::setw(21)
              << Time(j.submit_time_ms()) << Entrypoint(j).substr(0, 60)
              << (j.message().empty() ? "" : "  (" + j.message() + ")") << "\n";
  }
  std::cout << jobs.size() << " job" << (jobs.size() == 1 ? "" : "s") << "\n";
  return 0;
}

int JobDelete(const JobFlags& f) {
  auto c = Connect(f.address, f.token);
  if (!c.ok()) return CallFailed(c.status());
  auto job = Find(*c, f.id);
  if (!job.ok()) return CallFailed(job.status());
  if (!Ended(*job)) {
    return Fail("job " + f.id + " is " + proto::JobSubmission::Status_Name(job->status()) +
                ": stop it first (lumen job stop " + f.id + ")");
  }
  proto::KvDelRequest req;
  req.set_ns(node::kJobsNamespace);
  req.set_key(f.id);
  auto deleted = rpc::CallSync<proto::KvDelReply>(
      [&](auto cb) { c->gcs->KvDel(req, cb, {.timeout_ms = kCallMs}); });
  if (!deleted.ok()) return CallFailed(deleted.status());
  std::cout << "job " << f.id << " deleted (its log stays on its node)\n";
  return 0;
}

namespace {

// The id whose hex starts with `prefix` among `ids` (at least 4 characters;
// exactly one match).
absl::StatusOr<std::string> ByPrefix(const std::string& prefix,
                                     const std::vector<std::pair<std::string, std::string>>& ids,
                                     const std::string& kind) {
  std::string lower = prefix;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (lower.size() < 4) {
    return absl::InvalidArgumentError("give at least 4 characters of the " + kind + " id");
  }
  std::vector<std::string> found;
  for (const auto& [hex, binary] : ids) {
    if (hex.rfind(lower, 0) == 0) found.push_back(binary);
  }
  if (found.empty()) return absl::NotFoundError("no " + kind + " '" + prefix + "'");
  if (found.size() > 1) {
    return absl::InvalidArgumentError("'" + prefix + "' matches several " + kind +
                                      "s: give more of the id");
  }
  return found[0];
}

// Where a log is: the node, and the worker (empty: the node manager's).
struct LogPlace {
  std::string node;
  std::string worker;
};

absl::StatusOr<LogPlace> Locate(const Cluster& c, const LogFlags& f) {
  LUMEN_ASSIGN_OR_RETURN(auto nodes, AllNodes(c));
  if (!f.node.empty()) {
    std::vector<std::pair<std::string, std::string>> ids;
    for (const auto& n : nodes) ids.push_back({NodeId::FromBinary(n.node_id()).Hex(), n.node_id()});
    LUMEN_ASSIGN_OR_RETURN(std::string node, ByPrefix(f.node, ids, "node"));
    return LogPlace{node, ""};
  }
  if (!f.task.empty()) {
    TaskId id = TaskId::FromHex(f.task);
    if (id.IsNil() || id.Hex() != absl::AsciiStrToLower(f.task)) {
      return absl::InvalidArgumentError("--task " + f.task + ": give the whole task id (" +
                                        std::to_string(2 * TaskId::kSize) +
                                        " hex digits, as lumen list tasks shows)");
    }
    proto::ListTasksRequest req;
    req.set_task_id(id.Binary());
    auto got = rpc::CallSync<proto::ListTasksReply>(
        [&](auto cb) { c.gcs->ListTasks(req, cb, {.timeout_ms = kCallMs}); });
    if (!got.ok()) return got.status();
    if (got->tasks_size() == 0) return absl::NotFoundError("no task " + f.task);
    const proto::TaskRecord& t = got->tasks(0);
    if (t.worker_id().empty()) {
      return absl::FailedPreconditionError("task " + f.task + " has not run on a worker yet (" +
                                           std::string(proto::TaskState_Name(t.state())) + ")");
    }
    return LogPlace{t.node_id(), t.worker_id()};
  }
  if (!f.actor.empty()) {
    auto got = rpc::CallSync<proto::ListActorsReply>([&](auto cb) {
      c.gcs->ListActors(proto::ListActorsRequest(), cb, {.timeout_ms = kCallMs});
    });
    if (!got.ok()) return got.status();
    std::vector<std::pair<std::string, std::string>> ids;
    for (const auto& a : got->actors()) {
      ids.push_back({ActorId::FromBinary(a.actor_id()).Hex(), a.actor_id()});
    }
    LUMEN_ASSIGN_OR_RETURN(std::string actor, ByPrefix(f.actor, ids, "actor"));
    for (const auto& a : got->actors()) {
      if (a.actor_id() != actor) continue;
      if (a.last_worker().worker_id().empty()) {
        return absl::FailedPreconditionError("actor " + f.actor +
                                             " has not started on a worker yet");
      }
      return LogPlace{a.last_worker().node_id(), a.last_worker().worker_id()};
    }
  }
  // A worker: ask each live node.
  WorkerId worker = WorkerId::FromHex(f.worker);
  if (worker.IsNil() || worker.Hex() != absl::AsciiStrToLower(f.worker)) {
    return absl::InvalidArgumentError("--worker " + f.worker + ": give the whole worker id (" +
                                      std::to_string(2 * WorkerId::kSize) + " hex digits)");
  }
  for (const auto& n : nodes) {
    if (n.state() != proto::NodeInfo::ALIVE) continue;
    rpc::NodeManagerClient nm(rpc::JoinHostPort(n.address().host(), n.address().port()), c.token,
                              nullptr);
    proto::ReadLogRequest req;
    req.set_worker_id(worker.Binary());
    req.set_max_bytes(1);
    auto got = rpc::CallSync<proto::ReadLogReply>(
        [&](auto cb) { nm.ReadLog(req, cb, {.timeout_ms = kCallMs}); });
    if (got.ok()) return LogPlace{n.node_id(), worker.Binary()};
  }
  return absl::NotFoundError("no live node has a log of worker " + f.worker);
}

}  // namespace

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
  auto place = Locate(*c, f);
  if (!place.ok()) return CallFailed(place.status());
  auto nm = NodeManagerOf(*c, place->node);
  if (!nm.ok()) return CallFailed(nm.status());
  int64_t offset = 0;
  bool first = true;
  while (true) {
    proto::ReadLogRequest req;
    if (place->worker.empty()) {
      req.set_node_manager(true);
    } else {
      req.set_worker_id(place->worker);
      req.set_stderr(f.err);
    }
    // --tail: the last lines of the last MiB.
    req.set_offset(first && f.tail > 0 ? -(int64_t{1} << 20) : offset);
    auto got = rpc::CallSync<proto::ReadLogReply>(
        [&](auto cb) { (*nm)->ReadLog(req, cb, {.timeout_ms = kCallMs}); });
    if (!got.ok()) return CallFailed(got.status());
    std::string data = got->data();
    if (first && f.tail > 0) {
      size_t end = data.size();
      if (end > 0 && data[end - 1] == '\n') end--;  // the last line's own newline
      size_t at = end;
      int lines = 0;
      while (at > 0) {
        size_t nl = data.rfind('\n', at - 1);
        if (nl == std::string::npos) {
          at = 0;
          break;
        }
        if (++lines == f.tail) {
          at = nl + 1;
          break;
        }
        at = nl;
      }
      data = data.substr(at);
    }
    std::cout << data << std::flush;
    first = false;
    bool more = got->next_offset() > offset;
    offset = got->next_offset();
    if (!f.follow || (!got->running() && !more)) return 0;
    if (!more) std::this_thread::sleep_for(std::chrono::milliseconds(250));  // polling a file
  }
}

}  // namespace lumen::cli
