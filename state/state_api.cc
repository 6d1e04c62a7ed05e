#include "state/state_api.h"

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "common/status.h"
#include "gcs/task_events.h"
#include "lumen/id.h"
#include "lumen/serialization.h"
#include "node/job_supervisor.h"
#include "rpc/rpc.h"

namespace lumen::state {
namespace {

const char* ActorState(proto::ActorInfo::State s) {
  switch (s) {
    case proto::ActorInfo::PENDING:
      return "PENDING";
    case proto::ActorInfo::ALIVE:
      return "ALIVE";
    case proto::ActorInfo::RESTARTING:
      return "RESTARTING";
    case proto::ActorInfo::DEAD:
      return "DEAD";
    default:
      return "UNKNOWN";
  }
}

const char* TaskType(proto::TaskType t) {
  switch (t) {
    case proto::ACTOR_CREATION_TASK:
      return "ACTOR_CREATION";
    case proto::ACTOR_TASK:
      return "ACTOR_TASK";
    default:
      return "NORMAL";
  }
}

// The actor's C++ class as written (the record keeps typeid's name).
std::string ClassName(const proto::ActorInfo& a) {
  return a.class_name().empty() ? "" : internal::Demangle(a.class_name().c_str());
}

// key=value filters, each key one of `keys`.
absl::StatusOr<std::map<std::string, std::string>> ParseFilters(
    const std::vector<std::string>& filters, const std::vector<std::string>& keys,
    const std::string& kind) {
  std::map<std::string, std::string> out;
  for (const auto& f : filters) {
    size_t eq = f.find('=');
    std::string key = f.substr(0, eq);
    if (eq == std::string::npos || eq == 0 || eq + 1 == f.size()) {
      return absl::InvalidArgumentError("filter '" + f + "' is not KEY=VALUE");
    }
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
      std::string list;
      for (const auto& k : keys) list += (list.empty() ? "" : ", ") + k;
      return absl::InvalidArgumentError("cannot filter " + kind + " by '" + key + "': use " + list);
    }
    out[key] = f.substr(eq + 1);
  }
  return out;
}

// Whether `hex` (a full id or its first characters) names `binary`.
bool IdMatches(const std::string& binary, const std::string& hex) {
  return !hex.empty() && Hex(binary).rfind(absl::AsciiStrToLower(hex), 0) == 0;
}

bool SameText(const std::string& a, const std::string& b) {
  return absl::AsciiStrToUpper(a) == absl::AsciiStrToUpper(b);
}

// The exact binary id from hex of kSize bytes, or an error saying what an id looks like.
template <typename Id>
absl::StatusOr<std::string> FullId(const std::string& hex, const char* what) {
  Id id = Id::FromHex(absl::AsciiStrToLower(hex));
  if (id.IsNil()) {
    return absl::InvalidArgumentError(std::string(what) + " id '" + hex + "' is not " +
                                      std::to_string(2 * Id::kSize) + " hex digits");
  }
  return id.Binary();
}

// The one record whose id starts with `prefix`; `kind` and `how` for errors.
template <typename Record, typename IdOf>
absl::StatusOr<const Record*> OneByPrefix(const std::vector<Record>& records, IdOf id_of,
                                          const std::string& prefix, const std::string& kind) {
  std::vector<const Record*> match;
  for (const auto& r : records) {
    if (IdMatches(id_of(r), prefix)) match.push_back(&r);
  }
  if (match.empty()) {
    return absl::NotFoundError("no " + kind + " '" + prefix + "' (lumen list " + kind +
                               "s shows them)");
  }
  if (match.size() > 1) {
    return absl::InvalidArgumentError("several " + kind + "s start with '" + prefix +
                                      "': give more of the id");
  }
  return match[0];
}

absl::StatusOr<proto::ListTasksRequest> TaskQuery(const std::vector<std::string>& filters,
                                                  int limit) {
  auto parsed = ParseFilters(filters, {"state", "name", "job", "node", "actor"}, "tasks");
  if (!parsed.ok()) return parsed.status();
  proto::ListTasksRequest req;
  req.set_limit(limit);
  for (const auto& [key, value] : *parsed) {
    if (key == "state") {
      proto::TaskState s = gcs::ParseTaskState(value);
      if (s == proto::TASK_STATE_UNSPECIFIED) {
        return absl::InvalidArgumentError("no task state '" + value +
                                          "': use PENDING, RUNNING, FINISHED or FAILED");
      }
      req.set_state(s);
    } else if (key == "name") {
      req.set_name(value);
    } else if (key == "job") {
      LUMEN_ASSIGN_OR_RETURN(std::string id, FullId<JobId>(value, "job"));
      req.set_job_id(id);
    } else if (key == "node") {
      LUMEN_ASSIGN_OR_RETURN(std::string id, FullId<NodeId>(value, "node"));
      req.set_node_id(id);
    } else if (key == "actor") {
      LUMEN_ASSIGN_OR_RETURN(std::string id, FullId<ActorId>(value, "actor"));
      req.set_actor_id(id);
    }
  }
  return req;
}

// Appends `row` unless `limit` rows are there.
void Keep(Json& rows, Json row, int limit) {
  if (static_cast<int>(rows.size()) < limit) rows.push_back(std::move(row));
}

}  // namespace

std::string Hex(const std::string& binary) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(binary.size() * 2);
  for (unsigned char c : binary) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

Json TaskJson(const proto::TaskRecord& r) {
  return {{"task_id", Hex(r.task_id())},
          {"job_id", Hex(r.job_id())},
          {"name", r.name()},
          {"type", TaskType(r.type())},
          {"state", gcs::TaskStateName(r.state())},
          {"attempt", r.attempt()},
          {"node_id", Hex(r.node_id())},
          {"worker_id", Hex(r.worker_id())},
          {"pid", r.pid()},
          {"actor_id", Hex(r.actor_id())},
          {"error", r.error()},
          {"submitted_ms", r.submitted_ms()},
          {"started_ms", r.started_ms()},
          {"ended_ms", r.ended_ms()}};
}

Json ActorJson(const proto::ActorInfo& a) {
  return {{"actor_id", Hex(a.actor_id())},
          {"job_id", Hex(a.job_id())},
          {"class_name", ClassName(a)},
          {"name", a.name()},
          {"namespace", a.ns()},
          {"state", ActorState(a.state())},
          {"node_id", Hex(a.node_id().empty() ? a.last_worker().node_id() : a.node_id())},
          {"worker_id", Hex(a.last_worker().worker_id())},
          {"pid", a.pid()},
          {"num_restarts", a.num_restarts()},
          {"max_restarts", a.max_restarts()},
          {"death_cause", a.death_cause()},
          {"pending_reason", a.pending_reason()},
          {"detached", a.detached()},
          {"start_time_ms", a.start_time_ms()},
          {"end_time_ms", a.end_time_ms()}};
}

Json NodeJson(const proto::NodeInfo& n) {
  Json total = Json::object(), available = Json::object();
  for (const auto& [k, v] : n.resources_total()) total[k] = v;
  for (const auto& [k, v] : n.resources_available()) available[k] = v;
  const proto::NodeStats& st = n.stats();
  return {{"node_id", Hex(n.node_id())},
          {"address", rpc::JoinHostPort(n.address().host(), n.address().port())},
          {"state", n.state() == proto::NodeInfo::ALIVE ? "ALIVE" : "DEAD"},
          {"is_head", n.is_head()},
          {"resources_total", total},
          {"resources_available", available},
          {"metrics_port", n.metrics_port()},
          {"hostname", n.hostname()},
          {"start_time_ms", n.start_time_ms()},
          {"death_reason", n.death_reason()},
          {"stats",
           {{"object_store_used", st.object_store_used()},
            {"object_store_capacity", st.object_store_capacity()},
            {"num_objects", st.num_objects()},
            {"num_workers", st.num_workers()},
            {"num_leased_workers", st.num_leased_workers()},
            {"tasks_executed", st.tasks_executed()},
            {"host_cpu_percent", st.host_cpu_percent()},
            {"host_num_cpus", st.host_num_cpus()},
            {"host_mem_total_bytes", st.host_mem_total_bytes()},
            {"host_mem_used_bytes", st.host_mem_used_bytes()}}}};
}

Json GroupJson(const proto::PlacementGroupInfo& g) {
  static const char* kStates[] = {"PENDING", "CREATED", "REMOVED", "RESCHEDULING", "INFEASIBLE"};
  static const char* kStrategies[] = {"PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"};
  Json bundles = Json::array();
  for (int i = 0; i < g.bundles_size(); ++i) {
    Json b = Json::object();
    for (const auto& [k, v] : g.bundles(i).resources()) b[k] = v;
    bundles.push_back(
        {{"resources", b}, {"node_id", i < g.bundle_nodes_size() ? Hex(g.bundle_nodes(i)) : ""}});
  }
  int state = static_cast<int>(g.state());
  int strategy = static_cast<int>(g.strategy());
  return {{"placement_group_id", Hex(g.group_id())},
          {"job_id", Hex(g.job_id())},
          {"name", g.name()},
          {"state", state >= 0 && state < 5 ? kStates[state] : "UNKNOWN"},
          {"strategy", strategy >= 0 && strategy < 4 ? kStrategies[strategy] : "UNKNOWN"},
          {"bundles", bundles},
          {"detached", g.detached()},
          {"error", g.error()}};
}

Json JobJson(const proto::JobInfo& j) {
  return {{"job_id", Hex(j.job_id())},          {"status", j.finished() ? "FINISHED" : "RUNNING"},
          {"driver_pid", j.driver_pid()},       {"entrypoint", j.entrypoint()},
          {"start_time_ms", j.start_time_ms()}, {"end_time_ms", j.end_time_ms()}};
}

Json WorkerJson(const proto::WorkerRecord& w, const proto::NodeInfo& n) {
  return {{"worker_id", Hex(w.worker_id())},
          {"node_id", Hex(n.node_id())},
          {"pid", w.pid()},
          {"job_id", Hex(w.job_id())},
          {"state", w.state()},
          {"actor_id", Hex(w.actor_id())},
          {"start_time_ms", w.start_time_ms()},
          {"stdout", w.log_prefix() + ".out"},
          {"stderr", w.log_prefix() + ".err"}};
}

std::string Entrypoint(const proto::JobSubmission& job) {
  if (!job.entrypoint().empty()) return job.entrypoint();
  std::string out;
  for (const auto& a : job.argv()) out += (out.empty() ? "" : " ") + a;
  return out;
}

bool JobEnded(const proto::JobSubmission& job) {
  return job.status() == proto::JobSubmission::SUCCEEDED ||
         job.status() == proto::JobSubmission::FAILED ||
         job.status() == proto::JobSubmission::STOPPED;
}

Json SubmissionJson(const proto::JobSubmission& job) {
  Json metadata = Json::object(), env = Json::object();
  for (const auto& [k, v] : job.metadata()) metadata[k] = v;
  for (const auto& [k, v] : job.env()) env[k] = v;
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
          {"env", env},
          {"metadata", metadata}};
}

std::string LastLines(const std::string& data, int lines) {
  if (lines <= 0) return data;
  size_t end = data.size();
  if (end > 0 && data[end - 1] == '\n') end--;  // the last line's own newline
  size_t at = end;
  int seen = 0;
  while (at > 0) {
    size_t nl = data.rfind('\n', at - 1);
    if (nl == std::string::npos) return data;
    if (++seen == lines) return data.substr(nl + 1);
    at = nl;
  }
  return data;
}

const std::vector<std::string>& ListKinds() {
  static const std::vector<std::string> kKinds = {
      "nodes", "jobs", "actors", "tasks", "objects", "placement-groups", "workers"};
  return kKinds;
}

ClusterState::ClusterState(std::string gcs_address, std::string token, int64_t call_ms)
    : address_(std::move(gcs_address)),
      token_(std::move(token)),
      call_ms_(call_ms),
      gcs_(std::make_unique<rpc::GcsClient>(address_, token_, nullptr)) {}

ClusterState::~ClusterState() = default;

absl::Status ClusterState::Unreachable(const absl::Status& s) const {
  if (absl::IsNotFound(s) || absl::IsInvalidArgument(s)) return s;
  return absl::Status(s.code(),
                      "cannot reach the cluster at " + address_ + ": " + std::string(s.message()));
}

absl::StatusOr<std::vector<proto::NodeInfo>> ClusterState::Nodes() {
  auto got = rpc::CallSync<proto::GetAllNodesReply>([&](auto cb) {
    gcs_->GetAllNodes(proto::GetAllNodesRequest(), cb, {.timeout_ms = call_ms_});
  });
  if (!got.ok()) return Unreachable(got.status());
  return std::vector<proto::NodeInfo>(got->nodes().begin(), got->nodes().end());
}

absl::StatusOr<std::vector<proto::ActorInfo>> ClusterState::Actors() {
  auto got = rpc::CallSync<proto::ListActorsReply>(
      [&](auto cb) { gcs_->ListActors(proto::ListActorsRequest(), cb, {.timeout_ms = call_ms_}); });
  if (!got.ok()) return Unreachable(got.status());
  return std::vector<proto::ActorInfo>(got->actors().begin(), got->actors().end());
}

absl::StatusOr<proto::ListTasksReply> ClusterState::Tasks(const proto::ListTasksRequest& request) {
  auto got = rpc::CallSync<proto::ListTasksReply>(
      [&](auto cb) { gcs_->ListTasks(request, cb, {.timeout_ms = call_ms_}); });
  if (!got.ok()) return Unreachable(got.status());
  return got;
}

template <typename Reply, typename Call>
std::vector<std::pair<proto::NodeInfo, Reply>> ClusterState::AskEveryNode(Call call,
                                                                          std::string* note) {
  std::vector<std::pair<proto::NodeInfo, Reply>> out;
  auto nodes = Nodes();
  if (!nodes.ok()) {
    *note = "cannot list the nodes: " + std::string(nodes.status().message());
    return out;
  }
  for (const auto& n : *nodes) {
    if (n.state() != proto::NodeInfo::ALIVE) continue;
    rpc::NodeManagerClient nm(rpc::JoinHostPort(n.address().host(), n.address().port()), token_,
                              nullptr);
    auto got = rpc::CallSync<Reply>([&](auto cb) { call(nm, cb); });
    if (got.ok()) {
      out.emplace_back(n, std::move(*got));
    } else {
      *note += "node " + Hex(n.node_id()).substr(0, 12) +
               " did not answer: " + std::string(got.status().message()) + "\n";
    }
  }
  return out;
}

absl::StatusOr<ClusterState::Rows> ClusterState::List(const std::string& kind,
                                                      const std::vector<std::string>& filters,
                                                      int limit) {
  Rows out;
  Json& rows = out.rows;
  if (limit <= 0) return absl::InvalidArgumentError("the limit must be at least 1");
  if (kind == "tasks") {
    LUMEN_ASSIGN_OR_RETURN(auto req, TaskQuery(filters, limit));
    LUMEN_ASSIGN_OR_RETURN(auto got, Tasks(req));
    for (const auto& t : got.tasks()) rows.push_back(TaskJson(t));
    out.note = std::to_string(got.tasks_size()) + " of " + std::to_string(got.matched()) +
               " matching tasks (" + std::to_string(got.kept()) + " kept";
    if (got.dropped() > 0) {
      out.note += ", " + std::to_string(got.dropped()) + " older ones dropped";
    }
    if (got.dropped_at_source() > 0) {
      out.note +=
          ", " + std::to_string(got.dropped_at_source()) + " events lost before reaching the GCS";
    }
    out.note += ")";
  } else if (kind == "actors") {
    LUMEN_ASSIGN_OR_RETURN(
        auto parsed, ParseFilters(filters, {"state", "class", "name", "job", "node"}, "actors"));
    LUMEN_ASSIGN_OR_RETURN(auto actors, Actors());
    for (const auto& a : actors) {
      Json j = ActorJson(a);
      bool keep = true;
      for (const auto& [key, value] : parsed) {
        if (key == "job" || key == "node") {
          keep = keep && IdMatches(key == "job" ? a.job_id() : a.node_id(), value);
        } else {
          keep = keep && SameText(j[key == "class" ? "class_name" : key].get<std::string>(), value);
        }
      }
      if (keep) Keep(rows, std::move(j), limit);
    }
  } else if (kind == "nodes") {
    LUMEN_ASSIGN_OR_RETURN(auto parsed, ParseFilters(filters, {"state"}, "nodes"));
    LUMEN_ASSIGN_OR_RETURN(auto nodes, Nodes());
    for (const auto& n : nodes) {
      Json j = NodeJson(n);
      if (parsed.count("state") && !SameText(parsed["state"], j["state"])) continue;
      Keep(rows, std::move(j), limit);
    }
  } else if (kind == "jobs") {
    LUMEN_ASSIGN_OR_RETURN(auto parsed, ParseFilters(filters, {"status"}, "jobs"));
    auto got = rpc::CallSync<proto::GetAllJobsReply>([&](auto cb) {
      gcs_->GetAllJobs(proto::GetAllJobsRequest(), cb, {.timeout_ms = call_ms_});
    });
    if (!got.ok()) return Unreachable(got.status());
    for (const auto& job : got->jobs()) {
      Json j = JobJson(job);
      if (parsed.count("status") && !SameText(parsed["status"], j["status"])) continue;
      Keep(rows, std::move(j), limit);
    }
  } else if (kind == "workers") {
    LUMEN_ASSIGN_OR_RETURN(auto parsed, ParseFilters(filters, {"state", "job", "node"}, "workers"));
    auto answers = AskEveryNode<proto::ListWorkersReply>(
        [&](rpc::NodeManagerClient& nm, auto cb) {
          nm.ListWorkers(proto::ListWorkersRequest(), cb, {.timeout_ms = call_ms_});
        },
        &out.note);
    for (const auto& [node, reply] : answers) {
      for (const auto& w : reply.workers()) {
        bool keep = true;
        for (const auto& [key, value] : parsed) {
          keep = keep && (key == "state" ? SameText(value, w.state())
                          : key == "job" ? IdMatches(w.job_id(), value)
                                         : IdMatches(node.node_id(), value));
        }
        if (keep) Keep(rows, WorkerJson(w, node), limit);
      }
    }
  } else if (kind == "objects") {
    LUMEN_ASSIGN_OR_RETURN(auto parsed, ParseFilters(filters, {"node"}, "objects"));
    proto::ListObjectsRequest req;
    req.set_limit(limit);
    auto answers = AskEveryNode<proto::ListObjectsReply>(
        [&](rpc::NodeManagerClient& nm, auto cb) {
          nm.ListObjects(req, cb, {.timeout_ms = call_ms_});
        },
        &out.note);
    int64_t total = 0, bytes = 0;
    for (const auto& [node, reply] : answers) {
      if (parsed.count("node") && !IdMatches(node.node_id(), parsed["node"])) continue;
      total += reply.total_objects();
      bytes += reply.total_bytes();
      for (const auto& o : reply.objects()) {
        Keep(rows,
             {{"object_id", Hex(o.object_id())},
              {"node_id", Hex(node.node_id())},
              {"size", o.size()}},
             limit);
      }
    }
    out.note += std::to_string(rows.size()) + " of " + std::to_string(total) +
                " objects in the nodes' stores (" + std::to_string(bytes) +
                " bytes); objects kept in their owner's memory (small ones) are not listed";
  } else if (kind == "placement-groups" || kind == "placement_groups") {
    LUMEN_ASSIGN_OR_RETURN(auto parsed,
                           ParseFilters(filters, {"state", "name"}, "placement groups"));
    auto got = rpc::CallSync<proto::ListPlacementGroupsReply>([&](auto cb) {
      gcs_->ListPlacementGroups(proto::ListPlacementGroupsRequest(), cb, {.timeout_ms = call_ms_});
    });
    if (!got.ok()) return Unreachable(got.status());
    for (const auto& g : got->groups()) {
      Json j = GroupJson(g);
      bool keep = true;
      for (const auto& [key, value] : parsed) keep = keep && SameText(j[key], value);
      if (keep) Keep(rows, std::move(j), limit);
    }
  } else {
    return absl::InvalidArgumentError("cannot list '" + kind +
                                      "': use nodes, jobs, actors, tasks, objects, "
                                      "placement-groups or workers");
  }
  return out;
}

absl::StatusOr<Json> ClusterState::Get(const std::string& kind, const std::string& id) {
  if (kind == "task") {
    LUMEN_ASSIGN_OR_RETURN(std::string binary, FullId<TaskId>(id, "task"));
    proto::ListTasksRequest req;
    req.set_task_id(binary);
    LUMEN_ASSIGN_OR_RETURN(auto got, Tasks(req));
    if (got.tasks_size() == 0) {
      return absl::NotFoundError("no task " + id + " among the task events the GCS keeps");
    }
    return TaskJson(got.tasks(0));
  }
  if (kind == "actor") {
    LUMEN_ASSIGN_OR_RETURN(auto actors, Actors());
    LUMEN_ASSIGN_OR_RETURN(auto* a,
                           OneByPrefix(
                               actors, [](const auto& a) { return a.actor_id(); }, id, "actor"));
    return ActorJson(*a);
  }
  if (kind == "node") {
    LUMEN_ASSIGN_OR_RETURN(auto nodes, Nodes());
    LUMEN_ASSIGN_OR_RETURN(auto* n,
                           OneByPrefix(
                               nodes, [](const auto& n) { return n.node_id(); }, id, "node"));
    return NodeJson(*n);
  }
  return absl::InvalidArgumentError("cannot get a '" + kind + "': use task, actor or node");
}

absl::StatusOr<Json> ClusterState::Summary(const std::string& kind,
                                           const std::vector<std::string>& filters,
                                           std::string* note) {
  // name -> state -> count
  std::map<std::string, std::map<std::string, int64_t>> counts;
  if (kind == "tasks") {
    LUMEN_ASSIGN_OR_RETURN(auto req, TaskQuery(filters, 1));
    req.set_summary(true);
    LUMEN_ASSIGN_OR_RETURN(auto got, Tasks(req));
    for (const auto& s : got.summary()) {
      for (const auto& [state, n] : s.by_state()) counts[s.name()][state] += n;
    }
  } else if (kind == "actors") {
    if (!filters.empty()) return absl::InvalidArgumentError("actors are summed up unfiltered");
    LUMEN_ASSIGN_OR_RETURN(auto actors, Actors());
    for (const auto& a : actors) counts[ClassName(a)][ActorState(a.state())]++;
  } else if (kind == "objects") {
    if (!filters.empty()) return absl::InvalidArgumentError("objects are summed up unfiltered");
    proto::ListObjectsRequest req;
    req.set_limit(1);
    auto answers = AskEveryNode<proto::ListObjectsReply>(
        [&](rpc::NodeManagerClient& nm, auto cb) {
          nm.ListObjects(req, cb, {.timeout_ms = call_ms_});
        },
        note);
    for (const auto& [node, reply] : answers) {
      auto& row = counts[Hex(node.node_id())];
      row["OBJECTS"] = reply.total_objects();
      row["BYTES"] = reply.total_bytes();
    }
  } else {
    return absl::InvalidArgumentError("cannot sum up '" + kind + "': use tasks, actors or objects");
  }
  Json out = Json::object();
  for (const auto& [name, states] : counts) out[name] = states;
  return out;
}

absl::StatusOr<std::unique_ptr<rpc::NodeManagerClient>> ClusterState::NodeManagerOf(
    const std::string& node) {
  LUMEN_ASSIGN_OR_RETURN(auto nodes, Nodes());
  for (const auto& n : nodes) {
    if (n.state() != proto::NodeInfo::ALIVE) continue;
    if (node.empty() ? n.is_head() : n.node_id() == node) {
      return std::make_unique<rpc::NodeManagerClient>(
          rpc::JoinHostPort(n.address().host(), n.address().port()), token_, nullptr);
    }
  }
  return absl::UnavailableError(node.empty() ? "the cluster has no live head node to run jobs"
                                             : "the node that has it is gone");
}

absl::StatusOr<Json> ClusterState::KillActor(const std::string& id) {
  LUMEN_ASSIGN_OR_RETURN(auto actors, Actors());
  LUMEN_ASSIGN_OR_RETURN(auto* a,
                         OneByPrefix(
                             actors, [](const auto& a) { return a.actor_id(); }, id, "actor"));
  if (a->state() == proto::ActorInfo::DEAD) {
    return absl::FailedPreconditionError("actor " + id + " is already dead: " + a->death_cause());
  }
  proto::KillActorRequest req;
  req.set_actor_id(a->actor_id());
  req.set_no_restart(true);
  auto got = rpc::CallSync<proto::KillActorReply>(
      [&](auto cb) { gcs_->KillActor(req, cb, {.timeout_ms = call_ms_}); });
  if (!got.ok()) return Unreachable(got.status());
  return ActorJson(got->actor());
}

absl::StatusOr<std::optional<proto::JobSubmission>> ClusterState::LoadJob(const std::string& id) {
  proto::KvGetRequest req;
  req.set_ns(node::kJobsNamespace);
  req.set_key(id);
  auto got = rpc::CallSync<proto::KvGetReply>(
      [&](auto cb) { gcs_->KvGet(req, cb, {.timeout_ms = call_ms_}); });
  if (!got.ok()) return Unreachable(got.status());
  if (!got->found()) return std::optional<proto::JobSubmission>();
  proto::JobSubmission job;
  if (!job.ParseFromString(got->value())) {
    return absl::DataLossError("the record of job " + id + " does not parse");
  }
  return std::optional<proto::JobSubmission>(std::move(job));
}

namespace {

// A job whose node is gone cannot end by itself: say so when reading it.
void Settle(proto::JobSubmission* job, const std::vector<proto::NodeInfo>& nodes) {
  if (JobEnded(*job)) return;
  for (const auto& n : nodes) {
    if (n.node_id() == job->node_id() && n.state() == proto::NodeInfo::ALIVE) return;
  }
  job->set_status(proto::JobSubmission::FAILED);
  job->set_message("the node running it is gone");
}

}  // namespace

absl::StatusOr<proto::JobSubmission> ClusterState::FindJob(const std::string& id) {
  if (absl::Status s = node::CheckSubmissionId(id); !s.ok()) return s;
  LUMEN_ASSIGN_OR_RETURN(auto job, LoadJob(id));
  if (!job) return absl::NotFoundError("no job '" + id + "' (lumen job list shows them)");
  LUMEN_ASSIGN_OR_RETURN(auto nodes, Nodes());
  Settle(&*job, nodes);
  return *job;
}

absl::StatusOr<std::vector<proto::JobSubmission>> ClusterState::Jobs() {
  proto::KvKeysRequest keys_req;
  keys_req.set_ns(node::kJobsNamespace);
  auto keys = rpc::CallSync<proto::KvKeysReply>(
      [&](auto cb) { gcs_->KvKeys(keys_req, cb, {.timeout_ms = call_ms_}); });
  if (!keys.ok()) return Unreachable(keys.status());
  LUMEN_ASSIGN_OR_RETURN(auto nodes, Nodes());
  std::vector<proto::JobSubmission> jobs;
  for (const auto& key : keys->keys()) {
    auto job = LoadJob(key);
    if (absl::IsDataLoss(job.status())) continue;  // one bad record hides no other
    if (!job.ok()) return job.status();
    if (!*job) continue;  // deleted meanwhile
    Settle(&**job, nodes);
    jobs.push_back(std::move(**job));
  }
  std::sort(jobs.begin(), jobs.end(),
            [](const auto& a, const auto& b) { return a.submit_time_ms() > b.submit_time_ms(); });
  return jobs;
}

absl::StatusOr<std::string> ClusterState::SubmitJob(const proto::SubmitJobRequest& request) {
  LUMEN_ASSIGN_OR_RETURN(auto nm, NodeManagerOf(""));
  auto submitted = rpc::CallSync<proto::SubmitJobReply>(
      [&](auto cb) { nm->SubmitJob(request, cb, {.timeout_ms = 30'000}); });
  if (!submitted.ok()) {
    return absl::Status(submitted.status().code(),
                        "job not submitted: " + std::string(submitted.status().message()));
  }
  return submitted->submission_id();
}

absl::StatusOr<bool> ClusterState::StopJob(const std::string& id) {
  LUMEN_ASSIGN_OR_RETURN(auto job, FindJob(id));
  if (JobEnded(job)) return false;
  LUMEN_ASSIGN_OR_RETURN(auto nm, NodeManagerOf(job.node_id()));
  proto::StopJobRequest req;
  req.set_submission_id(id);
  auto stopped = rpc::CallSync<proto::StopJobReply>(
      [&](auto cb) { nm->StopJob(req, cb, {.timeout_ms = call_ms_}); });
  if (!stopped.ok()) return stopped.status();
  return stopped->stopped();
}

absl::Status ClusterState::DeleteJob(const std::string& id) {
  LUMEN_ASSIGN_OR_RETURN(auto job, FindJob(id));
  if (!JobEnded(job)) {
    return absl::FailedPreconditionError("job " + id + " is " +
                                         proto::JobSubmission::Status_Name(job.status()) +
                                         ": stop it first (lumen job stop " + id + ")");
  }
  proto::KvDelRequest req;
  req.set_ns(node::kJobsNamespace);
  req.set_key(id);
  auto deleted = rpc::CallSync<proto::KvDelReply>(
      [&](auto cb) { gcs_->KvDel(req, cb, {.timeout_ms = call_ms_}); });
  if (!deleted.ok()) return Unreachable(deleted.status());
  return absl::OkStatus();
}

absl::StatusOr<proto::ReadJobLogsReply> ClusterState::ReadJobLogs(const proto::JobSubmission& job,
                                                                  int64_t offset) {
  LUMEN_ASSIGN_OR_RETURN(auto nm, NodeManagerOf(job.node_id()));
  proto::ReadJobLogsRequest req;
  req.set_submission_id(job.submission_id());
  req.set_offset(offset);
  return rpc::CallSync<proto::ReadJobLogsReply>(
      [&](auto cb) { nm->ReadJobLogs(req, cb, {.timeout_ms = call_ms_}); });
}

absl::StatusOr<std::string> ClusterState::JobLog(const proto::JobSubmission& job,
                                                 size_t max_bytes) {
  LUMEN_ASSIGN_OR_RETURN(auto nm, NodeManagerOf(job.node_id()));
  std::string log;
  int64_t offset = 0;
  while (log.size() < max_bytes) {
    proto::ReadJobLogsRequest req;
    req.set_submission_id(job.submission_id());
    req.set_offset(offset);
    req.set_max_bytes(4 << 20);
    auto got = rpc::CallSync<proto::ReadJobLogsReply>(
        [&](auto cb) { nm->ReadJobLogs(req, cb, {.timeout_ms = call_ms_}); });
    if (!got.ok()) return got.status();
    log += got->data();
    if (got->next_offset() <= offset) break;
    offset = got->next_offset();
  }
  if (log.size() > max_bytes) log.resize(max_bytes);
  return log;
}

namespace {

// The id whose hex starts with `prefix` among `ids` (at least 4 characters;
// exactly one match).
absl::StatusOr<std::string> ByPrefix(const std::string& prefix,
                                     const std::vector<std::pair<std::string, std::string>>& ids,
                                     const std::string& kind) {
  std::string lower = absl::AsciiStrToLower(prefix);
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

}  // namespace

absl::StatusOr<ClusterState::LogPlace> ClusterState::LocateLog(LogOf of, const std::string& id,
                                                               const std::string& flag) {
  LUMEN_ASSIGN_OR_RETURN(auto nodes, Nodes());
  if (of == LogOf::kNode) {
    std::vector<std::pair<std::string, std::string>> ids;
    for (const auto& n : nodes) ids.push_back({NodeId::FromBinary(n.node_id()).Hex(), n.node_id()});
    LUMEN_ASSIGN_OR_RETURN(std::string node, ByPrefix(id, ids, "node"));
    return LogPlace{node, ""};
  }
  if (of == LogOf::kTask) {
    TaskId task = TaskId::FromHex(id);
    if (task.IsNil() || task.Hex() != absl::AsciiStrToLower(id)) {
      return absl::InvalidArgumentError(flag + " " + id + ": give the whole task id (" +
                                        std::to_string(2 * TaskId::kSize) +
                                        " hex digits, as lumen list tasks shows)");
    }
    proto::ListTasksRequest req;
    req.set_task_id(task.Binary());
    LUMEN_ASSIGN_OR_RETURN(auto got, Tasks(req));
    if (got.tasks_size() == 0) return absl::NotFoundError("no task " + id);
    const proto::TaskRecord& t = got.tasks(0);
    if (t.worker_id().empty()) {
      return absl::FailedPreconditionError("task " + id + " has not run on a worker yet (" +
                                           std::string(proto::TaskState_Name(t.state())) + ")");
    }
    return LogPlace{t.node_id(), t.worker_id()};
  }
  if (of == LogOf::kActor) {
    LUMEN_ASSIGN_OR_RETURN(auto actors, Actors());
    std::vector<std::pair<std::string, std::string>> ids;
    for (const auto& a : actors)
      ids.push_back({ActorId::FromBinary(a.actor_id()).Hex(), a.actor_id()});
    LUMEN_ASSIGN_OR_RETURN(std::string actor, ByPrefix(id, ids, "actor"));
    for (const auto& a : actors) {
      if (a.actor_id() != actor) continue;
      if (a.last_worker().worker_id().empty()) {
        return absl::FailedPreconditionError("actor " + id + " has not started on a worker yet");
      }
      return LogPlace{a.last_worker().node_id(), a.last_worker().worker_id()};
    }
  }
  // A worker: ask each live node.
  WorkerId worker = WorkerId::FromHex(id);
  if (worker.IsNil() || worker.Hex() != absl::AsciiStrToLower(id)) {
    return absl::InvalidArgumentError(flag + " " + id + ": give the whole worker id (" +
                                      std::to_string(2 * WorkerId::kSize) + " hex digits)");
  }
  for (const auto& n : nodes) {
    if (n.state() != proto::NodeInfo::ALIVE) continue;
    rpc::NodeManagerClient nm(rpc::JoinHostPort(n.address().host(), n.address().port()), token_,
                              nullptr);
    proto::ReadLogRequest req;
    req.set_worker_id(worker.Binary());
    req.set_max_bytes(1);
    auto got = rpc::CallSync<proto::ReadLogReply>(
        [&](auto cb) { nm.ReadLog(req, cb, {.timeout_ms = call_ms_}); });
    if (got.ok()) return LogPlace{n.node_id(), worker.Binary()};
  }
  return absl::NotFoundError("no live node has a log of worker " + id);
}

absl::StatusOr<proto::ReadLogReply> ClusterState::ReadLog(const LogPlace& place, bool err,
                                                          int64_t offset, int64_t max_bytes) {
  LUMEN_ASSIGN_OR_RETURN(auto nm, NodeManagerOf(place.node));
  proto::ReadLogRequest req;
  if (place.worker.empty()) {
    req.set_node_manager(true);
  } else {
    req.set_worker_id(place.worker);
    req.set_stderr(err);
  }
  req.set_offset(offset);
  req.set_max_bytes(max_bytes);
  return rpc::CallSync<proto::ReadLogReply>(
      [&](auto cb) { nm->ReadLog(req, cb, {.timeout_ms = call_ms_}); });
}

}  // namespace lumen::state
