// Task events; see task_events.h.
#include "gcs/task_events.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <tuple>

#include "absl/strings/ascii.h"
#include "lumen/id.h"

namespace lumen::gcs {
namespace {

constexpr int kDefaultLimit = 100;
constexpr int kMaxLimit = 10'000;
// What one record keeps of a sender's strings (workers send less already).
constexpr size_t kMaxNameBytes = 1024;
constexpr size_t kMaxErrorBytes = 4096;

// Within one attempt a state only moves forward.
int Rank(proto::TaskState s) {
  switch (s) {
    case proto::PENDING:
      return 1;
    case proto::RUNNING:
      return 2;
    case proto::FINISHED:
    case proto::FAILED:
      return 3;
    default:
      return 0;
  }
}

bool Matches(const proto::TaskRecord& r, const proto::ListTasksRequest& q) {
  return (q.job_id().empty() || r.job_id() == q.job_id()) &&
         (q.state() == proto::TASK_STATE_UNSPECIFIED || r.state() == q.state()) &&
         (q.name().empty() || r.name() == q.name()) &&
         (q.node_id().empty() || r.node_id() == q.node_id()) &&
         (q.actor_id().empty() || r.actor_id() == q.actor_id());
}

}  // namespace

const char* TaskStateName(proto::TaskState state) {
  switch (state) {
    case proto::PENDING:
      return "PENDING";
    case proto::RUNNING:
      return "RUNNING";
    case proto::FINISHED:
      return "FINISHED";
    case proto::FAILED:
      return "FAILED";
    default:
      return "UNKNOWN";
  }
}

proto::TaskState ParseTaskState(const std::string& name) {
  std::string upper = absl::AsciiStrToUpper(name);
  for (proto::TaskState s : {proto::PENDING, proto::RUNNING, proto::FINISHED, proto::FAILED}) {
    if (upper == TaskStateName(s)) return s;
  }
  return proto::TASK_STATE_UNSPECIFIED;
}

void GcsTaskEvents::Add(const proto::TaskEvent& e) {
  if (TaskId::FromBinary(e.task_id()).IsNil() || Rank(e.state()) == 0 || max_tasks_ == 0) return;
  auto it = tasks_.find(e.task_id());
  if (it == tasks_.end()) {
    while (tasks_.size() >= max_tasks_) {
      tasks_.erase(order_.front());
      order_.pop_front();
      dropped_++;
    }
    order_.push_back(e.task_id());
    it = tasks_.emplace(e.task_id(), Entry{{}, std::prev(order_.end())}).first;
    it->second.record.set_task_id(e.task_id());
  }
  proto::TaskRecord& r = it->second.record;
  if (!e.job_id().empty()) r.set_job_id(e.job_id());
  if (!e.name().empty()) r.set_name(e.name().substr(0, kMaxNameBytes));
  if (e.type() != proto::NORMAL_TASK) r.set_type(e.type());
  if (!e.actor_id().empty()) r.set_actor_id(e.actor_id());
  if (e.state() == proto::FAILED && !e.error().empty()) {
    r.set_error(e.error().substr(0, kMaxErrorBytes));
  }
  if (e.state() == proto::PENDING && (r.submitted_ms() == 0 || e.at_ms() < r.submitted_ms())) {
    r.set_submitted_ms(e.at_ms());
  }
  bool newer_attempt = e.attempt() > r.attempt();
  bool fresh = r.state() == proto::TASK_STATE_UNSPECIFIED;
  if (e.attempt() < r.attempt() && !fresh) return;  // an earlier attempt's, late
  if (newer_attempt || fresh || Rank(e.state()) > Rank(r.state())) {
    if (newer_attempt) {  // where the earlier attempt ran no longer says much
      r.clear_started_ms();
      r.clear_ended_ms();
    }
    r.set_attempt(e.attempt());
    r.set_state(e.state());
  }
  if (e.state() == proto::RUNNING || Rank(e.state()) == 3) {
    if (!e.node_id().empty()) r.set_node_id(e.node_id());
    if (!e.worker_id().empty()) r.set_worker_id(e.worker_id());
    if (e.pid() != 0) r.set_pid(e.pid());
  }
  if (e.state() == proto::RUNNING && r.started_ms() == 0) r.set_started_ms(e.at_ms());
  if (Rank(e.state()) == 3 && r.ended_ms() == 0) r.set_ended_ms(e.at_ms());
}

proto::ListTasksReply GcsTaskEvents::List(const proto::ListTasksRequest& q) const {
  proto::ListTasksReply out;
  out.set_kept(static_cast<int64_t>(tasks_.size()));
  out.set_dropped(dropped_);
  out.set_dropped_at_source(dropped_at_source_);
  int limit = q.limit() <= 0 ? kDefaultLimit : std::min(q.limit(), kMaxLimit);
  if (!q.task_id().empty()) {
    auto it = tasks_.find(q.task_id());
    if (it != tasks_.end()) {
      *out.add_tasks() = it->second.record;
      out.set_matched(1);
    }
    return out;
  }
  std::map<std::tuple<std::string, int>, proto::TaskSummary> summary;
  int64_t matched = 0;
  for (auto id = order_.rbegin(); id != order_.rend(); ++id) {  // newest first
    const proto::TaskRecord& r = tasks_.at(*id).record;
    if (!Matches(r, q)) continue;
    if (matched++ < limit) *out.add_tasks() = r;
    if (q.summary()) {
      proto::TaskSummary& s = summary[{r.name(), static_cast<int>(r.type())}];
      s.set_name(r.name());
      s.set_type(r.type());
      (*s.mutable_by_state())[TaskStateName(r.state())]++;
    }
  }
  out.set_matched(matched);
  for (auto& [key, s] : summary) *out.add_summary() = std::move(s);
  return out;
}

void GcsTaskEvents::HandleAddTaskEvents(const proto::AddTaskEventsRequest& request,
                                        proto::AddTaskEventsReply*, rpc::SendReply send) {
  for (const proto::TaskEvent& e : request.events()) Add(e);
  dropped_at_source_ += std::max<int64_t>(0, request.dropped());
  send(absl::OkStatus());
}

void GcsTaskEvents::HandleListTasks(const proto::ListTasksRequest& request,
                                    proto::ListTasksReply* reply, rpc::SendReply send) {
  *reply = List(request);
  if (!request.task_id().empty() && reply->tasks_size() == 0) {
    std::string why = "no task " + TaskId::FromBinary(request.task_id()).Hex() + " is known";
    if (dropped_ > 0) {
      why += " (the oldest " + std::to_string(dropped_) +
             " tasks were dropped to stay within the window; it may have been one)";
    }
    send(absl::NotFoundError(why));
    return;
  }
  send(absl::OkStatus());
}

}  // namespace lumen::gcs
