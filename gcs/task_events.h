// GcsTaskEvents: the tasks the cluster ran, for `lumen list|get|summary
// tasks` and the dashboard. Owners and workers send their tasks' events in
// batches (worker/task_events.h); each task's events merge into one record
// (state, attempt, where it ran, the error, when it was submitted, started
// and ended). At most `max_tasks` records are kept: the oldest are dropped
// first and counted, so a failed task can be looked up after the fact
// while the window lasts, and a reader knows when it did not.
//
// Events may come late and out of order (the owner's and the worker's go
// separately): a later attempt replaces an earlier one's state, and within
// an attempt a state never goes back (RUNNING does not undo FINISHED).
// Runs on the GCS loop; in memory (a restarted GCS starts empty).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <unordered_map>

#include "proto/gcs.pb.h"
#include "rpc/gcs_service.h"

namespace lumen::gcs {

class GcsTaskEvents : public rpc::GcsTaskHandler {
 public:
  explicit GcsTaskEvents(size_t max_tasks = 100'000) : max_tasks_(max_tasks) {}

  void Add(const proto::TaskEvent& event);
  proto::ListTasksReply List(const proto::ListTasksRequest& request) const;
  size_t size() const { return tasks_.size(); }
  int64_t dropped() const { return dropped_; }

  void HandleAddTaskEvents(const proto::AddTaskEventsRequest& request,
                           proto::AddTaskEventsReply* reply, rpc::SendReply send) override;
  void HandleListTasks(const proto::ListTasksRequest& request, proto::ListTasksReply* reply,
                       rpc::SendReply send) override;

 private:
  struct Entry {
    proto::TaskRecord record;
    std::list<std::string>::iterator order;
  };

  size_t max_tasks_;
  std::unordered_map<std::string, Entry> tasks_;  // by binary task id
  std::list<std::string> order_;                  // first seen, oldest first
  int64_t dropped_ = 0;
  int64_t dropped_at_source_ = 0;
};

// "PENDING", "RUNNING", "FINISHED", "FAILED"; nullopt-like UNSPECIFIED for
// anything else.
const char* TaskStateName(proto::TaskState state);
proto::TaskState ParseTaskState(const std::string& name);

}  // namespace lumen::gcs
