// TaskManager: the tasks this process submitted and has not seen finish.
// It turns replies into values in the memory store, retries tasks whose
// worker died while retries last, and releases the references a task held
// on its arguments once it is done. Runs on the core worker loop.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "lumen/id.h"
#include "proto/gcs.pb.h"
#include "proto/worker.pb.h"
#include "worker/memory_store.h"
#include "worker/reference_counter.h"

namespace lumen::worker {

struct PendingTask {
  proto::TaskSpec spec;
  std::vector<ObjectId> returns;
  std::vector<ObjectId> ref_args;  // references held until the task is done
  int retries_left = 0;
  int unresolved_args = 0;
  // Bytes of stored arguments by the node manager whose node holds them:
  // the lease is asked for where most of them are.
  std::map<std::string, int64_t> arg_bytes;
};

class TaskManager {
 public:
  // Frees a copy in a node's store that no reference needs.
  using FreeCopy = std::function<void(const ObjectId&, const ObjectLocation&)>;

  TaskManager(MemoryStore* store, ReferenceCounter* refs, FreeCopy free_copy)
      : store_(store), refs_(refs), free_copy_(std::move(free_copy)) {}

  // Told when a task is submitted (PENDING), submitted again (PENDING, its
  // next attempt) or given up on (FAILED): the state API's owner's side.
  using StateFn =
      std::function<void(const proto::TaskSpec&, proto::TaskState, const std::string& error)>;
  void set_on_state(StateFn fn) { on_state_ = std::move(fn); }

  void Add(PendingTask task);
  PendingTask* Find(const TaskId& id);
  // Stores the returned values; `node_manager` is where stored copies live.
  void Complete(const TaskId& id, const proto::PushTaskReply& reply,
                const std::string& node_manager);
  // True (and the task's attempt counted) when it may run again; otherwise
  // it fails with `error`.
  bool RetryOrFail(const TaskId& id, const absl::Status& error);
  void Fail(const TaskId& id, const absl::Status& error);
  // Fails every pending task (the cluster is gone).
  void FailAll(const absl::Status& error);
  size_t NumPending() const { return tasks_.size(); }

  // Lineage: the specs of finished normal tasks whose stored returns are
  // still referenced, so a return lost with its node can be made again by
  // running the task again (its retries permitting). Returns the task to
  // submit again for lost object `id` (its returns now pending), nullopt
  // when it runs again already, or an error that says why it cannot.
  absl::StatusOr<std::optional<TaskId>> Resubmit(const ObjectId& id);
  // The object was freed: its task's spec goes once no return needs it.
  // Thread-safe.
  void ForgetLineage(const ObjectId& id);
  size_t NumLineage() const;
  MemoryStore* store() const { return store_; }

 private:
  MemoryStore* store_;
  ReferenceCounter* refs_;
  FreeCopy free_copy_;
  StateFn on_state_;
  std::map<TaskId, PendingTask> tasks_;
  struct Lineage {
    PendingTask task;  // as submitted (retries_left: what is left)
    size_t live_returns = 0;
  };
  mutable std::mutex lineage_mu_;
  std::map<TaskId, Lineage> lineage_;
  std::unordered_map<ObjectId, TaskId> made_by_;  // stored returns with lineage
};

}  // namespace lumen::worker
