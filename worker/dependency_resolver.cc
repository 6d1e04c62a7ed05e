// Argument resolution; see dependency_resolver.h.
#include "worker/dependency_resolver.h"

namespace lumen::worker {

void DependencyResolver::Resolve(const TaskId& id, std::function<void(const TaskId&)> ready) {
  PendingTask* t = tasks_->Find(id);
  if (t == nullptr) return;
  t->unresolved_args = 0;
  for (int i = 0; i < t->spec.args_size(); ++i) {
    if (t->spec.args(i).has_ref()) t->unresolved_args++;
  }
  if (t->unresolved_args == 0) {
    ready(id);
    return;
  }
  for (int i = 0; i < t->spec.args_size(); ++i) {
    if (!t->spec.args(i).has_ref()) continue;
    ObjectId arg = ObjectId::FromBinary(t->spec.args(i).ref().object_id());
    store_->OnReady(arg, [this, id, i, ready](const StoredObject& o) {
      loop_->Post("resolver.arg_ready", [this, id, i, o, ready] { OnArgReady(id, i, o, ready); });
    });
  }
}

void DependencyResolver::OnArgReady(const TaskId& id, int index, const StoredObject& object,
                                    const std::function<void(const TaskId&)>& ready) {
  PendingTask* t = tasks_->Find(id);
  if (t == nullptr) return;
  proto::TaskArg* arg = t->spec.mutable_args(index);
  switch (object.kind) {
    case StoredObject::Kind::kValue:
      arg->set_value(*object.value);  // small: carried inline
      break;
    case StoredObject::Kind::kInStore:
      arg->mutable_ref()->set_node_id(object.node.Binary());
      arg->mutable_ref()->set_size(object.size);
      if (!object.node_manager.empty()) t->arg_bytes[object.node_manager] += object.size;
      break;
    case StoredObject::Kind::kError:
      tasks_->Fail(id, absl::Status(object.error.code(),
                                    "argument " + std::to_string(index + 1) + " of " +
                                        t->spec.function_name() +
                                        " failed: " + std::string(object.error.message())));
      return;
  }
  if (--t->unresolved_args == 0) ready(id);
}

}  // namespace lumen::worker
