// Pending tasks and their results; see task_manager.h.
#include "worker/task_manager.h"

#include "common/logging.h"

namespace lumen::worker {

void TaskManager::Add(PendingTask task) {
  TaskId id = TaskId::FromBinary(task.spec.task_id());
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
  std::vector<ObjectId> args = std::move(it->second.ref_args);
  tasks_.erase(it);
  refs_->RemoveSubmittedRefs(args);
}

bool TaskManager::RetryOrFail(const TaskId& id, const absl::Status& error) {
  PendingTask* t = Find(id);
  if (t == nullptr) return false;
  if (t->retries_left > 0) {
    t->retries_left--;
    t->spec.set_attempt(t->spec.attempt() + 1);
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

void TaskManager::Fail(const TaskId& id, const absl::Status& error) {
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return;
  for (const ObjectId& oid : it->second.returns) {
    store_->Put(oid, StoredObject::Error(error));
    if (!refs_->Has(oid)) store_->Erase(oid);
  }
  std::vector<ObjectId> args = std::move(it->second.ref_args);
  tasks_.erase(it);
  refs_->RemoveSubmittedRefs(args);
}

}  // namespace lumen::worker
