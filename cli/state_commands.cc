// `lumen list|get|summary`: the cluster's state from the GCS (nodes, jobs,
// actors, and tasks from the task events the GCS keeps).
#include <algorithm>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "cli/commands.h"
#include "gcs/task_events.h"
#include "lumen/id.h"
#include "nlohmann/json.hpp"
#include "rpc/gcs_client.h"
#include "rpc/node_manager_service.h"
#include "rpc/rpc.h"

namespace lumen::cli {
namespace {

using Json = nlohmann::json;

constexpr int64_t kCallMs = 10'000;

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
          {"class_name", a.class_name()},
          {"name", a.name()},
          {"namespace", a.ns()},
          {"state", ActorState(a.state())},
          {"node_id", Hex(a.node_id())},
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
  return {{"node_id", Hex(n.node_id())},
          {"address", rpc::JoinHostPort(n.address().host(), n.address().port())},
          {"state", n.state() == proto::NodeInfo::ALIVE ? "ALIVE" : "DEAD"},
          {"is_head", n.is_head()},
          {"resources_total", total},
          {"resources_available", available},
          {"death_reason", n.death_reason()}};
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

void Print(const Json& rows, const std::vector<std::pair<std::string, int>>& columns) {
  for (const auto& [name, width] : columns) {
    bool time = name.size() > 3 && name.compare(name.size() - 3, 3, "_ms") == 0;
    std::string header = absl::AsciiStrToUpper(time ? name.substr(0, name.size() - 3) : name);
    std::cout << std::left << std::setw(width) << header;
  }
  std::cout << "\n";
  for (const auto& row : rows) {
    for (const auto& [name, width] : columns) {
      const Json& v = row.contains(name) ? row[name] : Json();
      std::string text = v.is_string() ? v.get<std::string>() : v.is_null() ? "" : v.dump();
      if (name.size() > 3 && name.compare(name.size() - 3, 3, "_id") == 0) {
        text = text.substr(0, 12);
      }
      if (name.size() > 3 && name.compare(name.size() - 3, 3, "_ms") == 0) {
        text = UtcTime(v.is_number() ? v.get<int64_t>() : 0, "%H:%M:%S");
      }
      if (static_cast<int>(text.size()) >= width) text = text.substr(0, width - 2) + "…";
      std::cout << std::left << std::setw(width) << text;
    }
    std::cout << "\n";
  }
}

struct Cluster {
  std::string address;
  std::unique_ptr<rpc::GcsClient> gcs;
};

absl::StatusOr<Cluster> Connect(const StateFlags& f) {
  auto address = ClusterAddress(f.address);
  if (!address.ok()) return address.status();
  Cluster c{*address, std::make_unique<rpc::GcsClient>(*address, ResolveToken(f.token), nullptr)};
  return c;
}

int CallFailed(const Cluster& c, const absl::Status& s) {
  if (absl::IsNotFound(s) || absl::IsInvalidArgument(s)) return Fail(std::string(s.message()));
  return Fail("cannot reach the cluster at " + c.address + ": " + std::string(s.message()));
}

absl::StatusOr<proto::ListTasksReply> Tasks(const Cluster& c, proto::ListTasksRequest req) {
  return rpc::CallSync<proto::ListTasksReply>(
      [&](auto cb) { c.gcs->ListTasks(req, cb, {.timeout_ms = kCallMs}); });
}

absl::StatusOr<proto::ListTasksRequest> TaskQuery(const StateFlags& f) {
  auto filters = ParseFilters(f.filters, {"state", "name", "job", "node", "actor"}, "tasks");
  if (!filters.ok()) return filters.status();
  proto::ListTasksRequest req;
  req.set_limit(f.limit);
  for (const auto& [key, value] : *filters) {
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
      auto id = FullId<JobId>(value, "job");
      if (!id.ok()) return id.status();
      req.set_job_id(*id);
    } else if (key == "node") {
      auto id = FullId<NodeId>(value, "node");
      if (!id.ok()) return id.status();
      req.set_node_id(*id);
    } else if (key == "actor") {
      auto id = FullId<ActorId>(value, "actor");
      if (!id.ok()) return id.status();
      req.set_actor_id(*id);
    }
  }
  return req;
}

absl::StatusOr<std::vector<proto::ActorInfo>> Actors(const Cluster& c) {
  auto got = rpc::CallSync<proto::ListActorsReply>(
      [&](auto cb) { c.gcs->ListActors(proto::ListActorsRequest(), cb, {.timeout_ms = kCallMs}); });
  if (!got.ok()) return got.status();
  return std::vector<proto::ActorInfo>(got->actors().begin(), got->actors().end());
}

absl::StatusOr<std::vector<proto::NodeInfo>> Nodes(const Cluster& c) {
  auto got = rpc::CallSync<proto::GetAllNodesReply>([&](auto cb) {
    c.gcs->GetAllNodes(proto::GetAllNodesRequest(), cb, {.timeout_ms = kCallMs});
  });
  if (!got.ok()) return got.status();
  return std::vector<proto::NodeInfo>(got->nodes().begin(), got->nodes().end());
}

// Asks every live node manager; `note` gets the ones that did not answer.
template <typename Reply, typename Call>
std::vector<std::pair<proto::NodeInfo, Reply>> AskEveryNode(const Cluster& c,
                                                            const std::string& token, Call call,
                                                            std::string* note) {
  std::vector<std::pair<proto::NodeInfo, Reply>> out;
  auto nodes = Nodes(c);
  if (!nodes.ok()) {
    *note = "cannot list the nodes: " + std::string(nodes.status().message());
    return out;
  }
  for (const auto& n : *nodes) {
    if (n.state() != proto::NodeInfo::ALIVE) continue;
    rpc::NodeManagerClient nm(rpc::JoinHostPort(n.address().host(), n.address().port()), token,
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

}  // namespace

int List(const StateFlags& f) {
  auto c = Connect(f);
  if (!c.ok()) return Fail(std::string(c.status().message()));
  Json rows = Json::array();
  std::vector<std::pair<std::string, int>> columns;
  std::string note;
  if (f.kind == "tasks") {
    auto req = TaskQuery(f);
    if (!req.ok()) return Fail(std::string(req.status().message()));
    auto got = Tasks(*c, *req);
    if (!got.ok()) return CallFailed(*c, got.status());
    for (const auto& t : got->tasks()) rows.push_back(TaskJson(t));
    columns = {{"task_id", 14}, {"name", 28}, {"state", 10},        {"attempt", 9},
               {"node_id", 14}, {"pid", 9},   {"submitted_ms", 11}, {"error", 50}};
    note = std::to_string(got->tasks_size()) + " of " + std::to_string(got->matched()) +
           " matching tasks (" + std::to_string(got->kept()) + " kept";
    if (got->dropped() > 0) note += ", " + std::to_string(got->dropped()) + " older ones dropped";
    if (got->dropped_at_source() > 0) {
      note +=
          ", " + std::to_string(got->dropped_at_source()) + " events lost before reaching the GCS";
    }
    note += ")";
  } else if (f.kind == "actors") {
    auto filters = ParseFilters(f.filters, {"state", "class", "name", "job", "node"}, "actors");
    if (!filters.ok()) return Fail(std::string(filters.status().message()));
    auto actors = Actors(*c);
    if (!actors.ok()) return CallFailed(*c, actors.status());
    for (const auto& a : *actors) {
      Json j = ActorJson(a);
      bool keep = true;
      for (const auto& [key, value] : *filters) {
        std::string field = key == "class"  ? "class_name"
                            : key == "job"  ? "job_id"
                            : key == "node" ? "node_id"
                                            : key;
        std::string have = j[field].get<std::string>();
        keep = keep && (key == "job" || key == "node"
                            ? IdMatches(key == "job" ? a.job_id() : a.node_id(), value)
                            : absl::AsciiStrToUpper(have) == absl::AsciiStrToUpper(value));
      }
      if (keep && static_cast<int>(rows.size()) < f.limit) rows.push_back(std::move(j));
    }
    columns = {{"actor_id", 14}, {"class_name", 24},   {"name", 16},       {"state", 12},
               {"node_id", 14},  {"num_restarts", 14}, {"death_cause", 50}};
  } else if (f.kind == "nodes") {
    auto filters = ParseFilters(f.filters, {"state"}, "nodes");
    if (!filters.ok()) return Fail(std::string(filters.status().message()));
    auto nodes = Nodes(*c);
    if (!nodes.ok()) return CallFailed(*c, nodes.status());
    for (const auto& n : *nodes) {
      Json j = NodeJson(n);
      if (filters->count("state") &&
          absl::AsciiStrToUpper(filters->at("state")) != j["state"].get<std::string>()) {
        continue;
      }
      if (static_cast<int>(rows.size()) < f.limit) rows.push_back(std::move(j));
    }
    columns = {
        {"node_id", 14}, {"address", 22}, {"state", 8}, {"is_head", 9}, {"death_reason", 40}};
  } else if (f.kind == "jobs") {
    auto filters = ParseFilters(f.filters, {"status"}, "jobs");
    if (!filters.ok()) return Fail(std::string(filters.status().message()));
    auto got = rpc::CallSync<proto::GetAllJobsReply>([&](auto cb) {
      c->gcs->GetAllJobs(proto::GetAllJobsRequest(), cb, {.timeout_ms = kCallMs});
    });
    if (!got.ok()) return CallFailed(*c, got.status());
    for (const auto& job : got->jobs()) {
      Json j = JobJson(job);
      if (filters->count("status") &&
          absl::AsciiStrToUpper(filters->at("status")) != j["status"].get<std::string>()) {
        continue;
      }
      if (static_cast<int>(rows.size()) < f.limit) rows.push_back(std::move(j));
    }
    columns = {{"job_id", 12},        {"status", 10},      {"driver_pid", 12},
               {"start_time_ms", 15}, {"end_time_ms", 13}, {"entrypoint", 40}};
  } else if (f.kind == "workers") {
    auto filters = ParseFilters(f.filters, {"state", "job", "node"}, "workers");
    if (!filters.ok()) return Fail(std::string(filters.status().message()));
    auto answers = AskEveryNode<proto::ListWorkersReply>(
        *c, ResolveToken(f.token),
        [](rpc::NodeManagerClient& nm, auto cb) {
          nm.ListWorkers(proto::ListWorkersRequest(), cb, {.timeout_ms = kCallMs});
        },
        &note);
    for (const auto& [node, reply] : answers) {
      for (const auto& w : reply.workers()) {
        bool keep = true;
        for (const auto& [key, value] : *filters) {
          keep = keep && (key == "state" ? absl::AsciiStrToUpper(value) == w.state()
                          : key == "job" ? IdMatches(w.job_id(), value)
                                         : IdMatches(node.node_id(), value));
        }
        if (keep && static_cast<int>(rows.size()) < f.limit) rows.push_back(WorkerJson(w, node));
      }
    }
    columns = {{"worker_id", 14}, {"node_id", 14},  {"pid", 9},    {"job_id", 10},
               {"state", 10},     {"actor_id", 14}, {"stdout", 50}};
  } else if (f.kind == "objects") {
    auto filters = ParseFilters(f.filters, {"node"}, "objects");
    if (!filters.ok()) return Fail(std::string(filters.status().message()));
    proto::ListObjectsRequest req;
    req.set_limit(f.limit);
    auto answers = AskEveryNode<proto::ListObjectsReply>(
        *c, ResolveToken(f.token),
        [&](rpc::NodeManagerClient& nm, auto cb) {
          nm.ListObjects(req, cb, {.timeout_ms = kCallMs});
        },
        &note);
    int64_t total = 0, bytes = 0;
    for (const auto& [node, reply] : answers) {
      if (filters->count("node") && !IdMatches(node.node_id(), filters->at("node"))) continue;
      total += reply.total_objects();
      bytes += reply.total_bytes();
      for (const auto& o : reply.objects()) {
        if (static_cast<int>(rows.size()) >= f.limit) break;
        rows.push_back({{"object_id", Hex(o.object_id())},
                        {"node_id", Hex(node.node_id())},
                        {"size", o.size()}});
      }
    }
    columns = {{"object_id", 42}, {"node_id", 14}, {"size", 12}};
    note += std::to_string(rows.size()) + " of " + std::to_string(total) +
            " objects in the nodes' stores (" + std::to_string(bytes) +
            " bytes); objects kept in their owner's memory (small ones) are not listed";
  } else if (f.kind == "placement-groups") {
    auto filters = ParseFilters(f.filters, {"state", "name"}, "placement groups");
    if (!filters.ok()) return Fail(std::string(filters.status().message()));
    auto got = rpc::CallSync<proto::ListPlacementGroupsReply>([&](auto cb) {
      c->gcs->ListPlacementGroups(proto::ListPlacementGroupsRequest(), cb, {.timeout_ms = kCallMs});
    });
    if (!got.ok()) return CallFailed(*c, got.status());
    for (const auto& g : got->groups()) {
      Json j = GroupJson(g);
      bool keep = true;
      for (const auto& [key, value] : *filters) {
        keep = keep &&
               absl::AsciiStrToUpper(j[key].get<std::string>()) == absl::AsciiStrToUpper(value);
      }
      if (keep && static_cast<int>(rows.size()) < f.limit) rows.push_back(std::move(j));
    }
    columns = {
        {"placement_group_id", 20}, {"name", 16}, {"state", 14}, {"strategy", 15}, {"error", 40}};
  }
  if (f.json) {
    std::cout << rows.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    return 0;
  }
  Print(rows, columns);
  if (!note.empty()) std::cout << "\n" << note << "\n";
  return 0;
}

int Get(const StateFlags& f) {
  auto c = Connect(f);
  if (!c.ok()) return Fail(std::string(c.status().message()));
  Json out;
  if (f.kind == "task") {
    auto id = FullId<TaskId>(f.id, "task");
    if (!id.ok()) return Fail(std::string(id.status().message()));
    proto::ListTasksRequest req;
    req.set_task_id(*id);
    auto got = Tasks(*c, req);
    if (!got.ok()) return CallFailed(*c, got.status());
    out = TaskJson(got->tasks(0));
  } else if (f.kind == "actor") {
    auto actors = Actors(*c);
    if (!actors.ok()) return CallFailed(*c, actors.status());
    std::vector<const proto::ActorInfo*> match;
    for (const auto& a : *actors) {
      if (IdMatches(a.actor_id(), f.id)) match.push_back(&a);
    }
    if (match.size() != 1) {
      return Fail(std::string(match.empty() ? "no actor '" : "several actors start with '") + f.id +
                  "' (lumen list actors shows them)");
    }
    out = ActorJson(*match[0]);
  } else if (f.kind == "node") {
    auto nodes = Nodes(*c);
    if (!nodes.ok()) return CallFailed(*c, nodes.status());
    std::vector<const proto::NodeInfo*> match;
    for (const auto& n : *nodes) {
      if (IdMatches(n.node_id(), f.id)) match.push_back(&n);
    }
    if (match.size() != 1) {
      return Fail(std::string(match.empty() ? "no node '" : "several nodes start with '") + f.id +
                  "' (lumen list nodes shows them)");
    }
    out = NodeJson(*match[0]);
  }
  std::cout << out.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  return 0;
}

int Summary(const StateFlags& f) {
  auto c = Connect(f);
  if (!c.ok()) return Fail(std::string(c.status().message()));
  // name -> state -> count
  std::map<std::string, std::map<std::string, int64_t>> counts;
  if (f.kind == "tasks") {
    auto req = TaskQuery(f);
    if (!req.ok()) return Fail(std::string(req.status().message()));
    req->set_summary(true);
    req->set_limit(1);
    auto got = Tasks(*c, *req);
    if (!got.ok()) return CallFailed(*c, got.status());
    for (const auto& s : got->summary()) {
      for (const auto& [state, n] : s.by_state()) counts[s.name()][state] += n;
    }
  } else if (f.kind == "actors") {
    auto actors = Actors(*c);
    if (!actors.ok()) return CallFailed(*c, actors.status());
    for (const auto& a : *actors) counts[a.class_name()][ActorState(a.state())]++;
  } else if (f.kind == "objects") {
    std::string note;
    proto::ListObjectsRequest req;
    req.set_limit(1);
    auto answers = AskEveryNode<proto::ListObjectsReply>(
        *c, ResolveToken(f.token),
        [&](rpc::NodeManagerClient& nm, auto cb) {
          nm.ListObjects(req, cb, {.timeout_ms = kCallMs});
        },
        &note);
    for (const auto& [node, reply] : answers) {
      auto& row = counts[Hex(node.node_id())];
      row["OBJECTS"] = reply.total_objects();
      row["BYTES"] = reply.total_bytes();
    }
    if (!note.empty()) std::cerr << note;
  }
  if (f.json) {
    Json out = Json::object();
    for (const auto& [name, states] : counts) out[name] = states;
    std::cout << out.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    return 0;
  }
  std::set<std::string> states;
  for (const auto& [name, by] : counts) {
    for (const auto& [state, n] : by) states.insert(state);
  }
  std::cout << std::left << std::setw(36)
            << (f.kind == "tasks"     ? "FUNCTION"
                : f.kind == "objects" ? "NODE"
                                      : "CLASS");
  for (const auto& s : states) std::cout << std::setw(12) << s;
  std::cout << "\n";
  for (const auto& [name, by] : counts) {
    std::cout << std::setw(36) << name;
    for (const auto& s : states) std::cout << std::setw(12) << (by.count(s) ? by.at(s) : 0);
    std::cout << "\n";
  }
  return 0;
}

std::string UtcTime(int64_t ms, const char* format) {
  if (ms <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::ostringstream out;
  out << std::put_time(&tm, format);
  return out.str();
}

}  // namespace lumen::cli
