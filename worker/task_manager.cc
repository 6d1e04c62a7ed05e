// Pending tasks and their results; see task_manager.h.
#include "worker/task_manager.h"

#include "common/logging.h"

namespace lumen::worker {

void TaskManager::Add(PendingTask task) {
  TaskId id = TaskId::FromBinary(task.spec.task_id());
  if (on_state_) on_state_(task.spec, proto::PENDING, "");
  tasks_[id] = std::move(task);
}

PendingTask* TaskManager::Find(const TaskId& id) {
  auto it = tasks_.find(id);
  return it == tasks_.end() ? nullptr : &it->second;
}

void TaskManager::Complete(const TaskId& id, const proto::PushTaskReply& reply,
                           const std::string& node_manager) {
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return;
  NodeId node = NodeId::FromBinary(reply.node_id());
  std::vector<ObjectId> stored;  // returns that live in a node's store
  for (const proto::ReturnObject& r : reply.returns()) {
    ObjectId oid = ObjectId::FromBinary(r.object_id());
    switch (r.kind_case()) {
      case proto::ReturnObject::kValue:
        store_->Put(oid, StoredObject::Value(r.value()));
        break;
      case proto::ReturnObject::kStoredSize: {
        ObjectLocation where{node, node_manager};
        if (!refs_->AddLocation(oid, where)) {
          free_copy_(oid, where);  // nobody holds a reference any more
          continue;
        }
        store_->Put(oid, StoredObject::InStore(node, node_manager, r.stored_size()));
        stored.push_back(oid);
        break;
      }
      case proto::ReturnObject::kError:
        store_->Put(
            oid, StoredObject::Error(absl::Status(static_cast<absl::StatusCode>(r.error().code()),
                                                  r.error().message())));
        break;
      default:
        store_->Put(oid, StoredObject::Error(absl::InternalError("empty return object")));
    }
    // The reference may have gone while the task ran.
    if (!refs_->Has(oid)) store_->Erase(oid);
  }
  std::vector<ObjectId> args = it->second.ref_args;
  if (it->second.spec.type() == proto::NORMAL_TASK) {
    std::lock_guard<std::mutex> lock(lineage_mu_);
    Lineage& l = lineage_[id];  // (a rebuilt task replaces its entry)
    l.task = std::move(it->second);
    l.task.ref_args.clear();  // the arguments' references end with the run
    for (const ObjectId& oid : stored) {
      if (made_by_.emplace(oid, id).second) l.live_returns++;
    }
    if (l.live_returns == 0) lineage_.erase(id);
  }
  tasks_.erase(it);
  refs_->RemoveSubmittedRefs(args);
}

absl::StatusOr<std::optional<TaskId>> TaskManager::Resubmit(const ObjectId& id) {
  PendingTask again;
  TaskId task;
  {
    std::lock_guard<std::mutex> lock(lineage_mu_);
    auto made = made_by_.find(id);
    if (made == made_by_.end()) {
      return absl::FailedPreconditionError(
          "it was not made by a task (a Put, an actor call, or a task whose lineage is gone), "
          "so nothing can make it again");
    }
    task = made->second;
    if (tasks_.count(task)) return std::optional<TaskId>();  // running again already
    Lineage& l = lineage_.at(task);
    if (l.task.retries_left <= 0) {
      return absl::FailedPreconditionError(
          "its task " + l.task.spec.function_name() + " has no retries left (max_retries " +
          std::to_string(l.task.spec.max_retries()) + "; raise it with SetMaxRetries)");
    }
    again = l.task;
  }
  // The arguments must still be there (or be made again themselves).
  for (const auto& arg : again.spec.args()) {
    if (!arg.has_ref()) continue;
    ObjectId a = ObjectId::FromBinary(arg.ref().object_id());
    if (arg.ref().owner().worker_id() == again.spec.caller().worker_id() && !refs_->Has(a)) {
      return absl::FailedPreconditionError("its task " + again.spec.function_name() +
                                           " needs argument " + a.Hex() +
                                           ", which was freed since");
    }
    again.ref_args.push_back(a);
  }
  again.retries_left--;
  again.spec.set_attempt(again.spec.attempt() + 1);
  for (const ObjectId& r : again.returns) store_->Erase(r);
  refs_->AddSubmittedRefs(again.ref_args);
  LUMEN_LOG_INFO("making lost object {} again: task={} function={} attempt={}", id.Short(),
                 task.Short(), again.spec.function_name(), again.spec.attempt());
  tasks_[task] = std::move(again);
  return std::optional<TaskId>(task);
}

void TaskManager::ForgetLineage(const ObjectId& id) {
  std::lock_guard<std::mutex> lock(lineage_mu_);
  auto made = made_by_.find(id);
  if (made == made_by_.end()) return;
  auto l = lineage_.find(made->second);
  made_by_.erase(made);
  if (l != lineage_.end() && --l->second.live_returns == 0) lineage_.erase(l);
}

size_t TaskManager::NumLineage() const {
  std::lock_guard<std::mutex> lock(lineage_mu_);
  return lineage_.size();
}

bool TaskManager::RetryOrFail(const TaskId& id, const absl::Status& error) {
  PendingTask* t = Find(id);
  if (t == nullptr) return false;
  if (t->retries_left > 0) {
    t->retries_left--;
    if (on_state_) on_state_(t->spec, proto::FAILED, error.ToString());
    t->spec.set_attempt(t->spec.attempt() + 1);
    if (on_state_) on_state_(t->spec, proto::PENDING, "");
    LUMEN_LOG_INFO("retrying task={} function={} attempt={}: {}", id.Short(),
                   t->spec.function_name(), t->spec.attempt(), error.ToString());
    return true;
  }
  int attempts = t->spec.attempt() + 1;
  Fail(id, absl::Status(error.code(), std::string(error.message()) + " (gave up after " +
                                          std::to_string(attempts) + " attempt" +
                                          (attempts == 1 ? "" : "s") + ")"));
  return false;
}

void TaskManager::FailAll(const absl::Status& error) {
  std::vector<TaskId> all;
  for (const auto& [id, t] : tasks_) all.push_back(id);
  for (const TaskId& id : all) Fail(id, error);
}

void TaskManager::Fail(const TaskId& id, const absl::Status& error) {
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return;
  if (on_state_) on_state_(it->second.spec, proto::FAILED, error.ToString());
  for (const ObjectId& oid : it->second.returns) {
    store_->Put(oid, StoredObject::Error(error));
    if (!refs_->Has(oid)) store_->Erase(oid);
  }
  std::vector<ObjectId> args = std::move(it->second.ref_args);
  tasks_.erase(it);
  refs_->RemoveSubmittedRefs(args);
}

}  // namespace lumen::worker
