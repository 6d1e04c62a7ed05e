// Task events on their way to the GCS; see task_events.h.
#include "worker/task_events.h"

#include <unistd.h>

#include <chrono>

#include "rpc/gcs_client.h"
#include "rpc/rpc.h"

namespace lumen::worker {

void TaskEventBuffer::Record(const proto::TaskSpec& spec, proto::TaskState state,
                             const std::string& error, const proto::Address* where) {
  proto::TaskEvent e;
  e.set_task_id(spec.task_id());
  e.set_job_id(spec.job_id());
  e.set_name(spec.function_name());
  e.set_type(spec.type());
  e.set_state(state);
  e.set_attempt(spec.attempt());
  e.set_actor_id(spec.actor_id());
  if (state == proto::FAILED) e.set_error(error.substr(0, 4096));
  if (where != nullptr) {
    e.set_node_id(where->node_id());
    e.set_worker_id(where->worker_id());
    e.set_pid(static_cast<int32_t>(::getpid()));
  }
  e.set_at_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count());
  std::lock_guard<std::mutex> lock(mu_);
  if (events_.size() >= capacity_) {
    dropped_++;
    dropped_total_++;
    return;
  }
  events_.push_back(std::move(e));
}

void TaskEventBuffer::Flush(rpc::GcsClient* gcs, bool sync, int64_t timeout_ms) {
  proto::AddTaskEventsRequest req;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (gcs == nullptr || (events_.empty() && dropped_ == 0) || (*sending_ && !sync)) return;
    for (auto& e : events_) *req.add_events() = std::move(e);
    events_.clear();
    req.set_dropped(dropped_);
    dropped_ = 0;
  }
  if (sync) {
    (void)rpc::CallSync<proto::AddTaskEventsReply>(
        [&](auto cb) { gcs->AddTaskEvents(req, cb, {.timeout_ms = timeout_ms}); });
    return;
  }
  *sending_ = true;
  // One batch at a time: a GCS that is away holds the next ones here (up to
  // the capacity) rather than in calls piling up.
  gcs->AddTaskEvents(
      req, [sending = sending_](absl::Status, proto::AddTaskEventsReply) { *sending = false; },
      {.timeout_ms = timeout_ms});
}

}  // namespace lumen::worker
