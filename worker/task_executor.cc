// Running tasks in a worker; see task_executor.h.
#include "worker/task_executor.h"

#include <unistd.h>

#include "common/ids.h"
#include "common/logging.h"
#include "lumen/internal/registry.h"

namespace lumen::worker {
namespace {

std::string RegisteredFunctions() {
  std::string out;
  for (const auto* f : internal::AllFunctions()) {
    if (!out.empty()) out += ", ";
    out += f->name;
  }
  return out.empty() ? "none" : out;
}

}  // namespace

void TaskExecutor::Enqueue(const proto::PushTaskRequest& request, proto::PushTaskReply* reply,
                           rpc::SendReply send) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopped_) {
      queue_.push_back(Item{request, reply, std::move(send)});
      cv_.notify_one();
      return;
    }
  }
  send(absl::UnavailableError("worker is stopping"));
}

void TaskExecutor::Run() {
  while (true) {
    Item item;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopped_ || !queue_.empty(); });
      if (stopped_) return;
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    Execute(item.request.spec(), item.reply);
    item.send(absl::OkStatus());
  }
}

void TaskExecutor::Stop() {
  std::deque<Item> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    dropped.swap(queue_);
  }
  cv_.notify_all();
  for (auto& item : dropped) item.send(absl::UnavailableError("worker is stopping"));
}

void TaskExecutor::Execute(const proto::TaskSpec& spec, proto::PushTaskReply* reply) {
  TaskId task = TaskId::FromBinary(spec.task_id());
  set_current_task_(task);
  absl::StatusOr<std::string> result = Call(spec);
  reply->set_node_id(io_->local_node().Binary());
  reply->set_pid(::getpid());
  int returns = std::max(1, spec.num_returns());
  for (int i = 1; i < returns; ++i) AddReturn(spec, ReturnObjectId(task, i), result, reply);
  AddReturn(spec, ReturnObjectId(task, returns), std::move(result), reply);
  set_current_task_(TaskId::Nil());
}

absl::StatusOr<std::string> TaskExecutor::Call(const proto::TaskSpec& spec) {
  const internal::FunctionInfo* fn = internal::FindFunctionByName(spec.function_name());
  if (fn == nullptr) {
    return absl::NotFoundError(
        "function " + spec.function_name() +
        " is not in this job's code package (registered here: " + RegisteredFunctions() +
        "). Register it with LUMEN_REMOTE in a shared library the driver links, or list the "
        "library in Config::code_paths");
  }
  if (!spec.signature().empty() && spec.signature() != fn->signature) {
    return absl::InvalidArgumentError("function " + spec.function_name() + " has type " +
                                      internal::Demangle(fn->signature.c_str()) +
                                      " in the code package but the caller was built with " +
                                      internal::Demangle(spec.signature().c_str()) +
                                      ": rebuild the driver and its libraries together");
  }
  std::vector<std::unique_ptr<MappedObject>> mapped;
  std::vector<internal::ArgView> args;
  for (const proto::TaskArg& arg : spec.args()) {
    if (!arg.has_ref()) {
      args.push_back({arg.value().data(), arg.value().size()});
      continue;
    }
    auto object = io_->Fetch(arg.ref(), /*timeout_ms=*/-1);
    if (!object.ok()) {
      return Annotate(object.status(), "cannot fetch an argument of " + spec.function_name());
    }
    args.push_back({(*object)->data(), (*object)->size()});
    mapped.push_back(std::move(*object));
  }
  return fn->invoke(args);
}

void TaskExecutor::AddReturn(const proto::TaskSpec& spec, const ObjectId& id,
                             absl::StatusOr<std::string> result, proto::PushTaskReply* reply) {
  proto::ReturnObject* r = reply->add_returns();
  r->set_object_id(id.Binary());
  if (result.ok() && result->size() > kMaxInlineBytes) {
    absl::Status stored = io_->PutInStore(id, *result, spec.caller());
    if (stored.ok()) {
      r->set_stored_size(static_cast<int64_t>(result->size()));
      return;
    }
    result = Annotate(stored, "cannot store the result of " + spec.function_name());
  }
  if (result.ok()) {
    r->set_value(std::move(*result));
    return;
  }
  std::string where = " [task " + TaskId::FromBinary(spec.task_id()).Short() + " on node " +
                      io_->local_node().Short() + ", worker pid " + std::to_string(::getpid()) +
                      "]";
  r->mutable_error()->set_code(static_cast<int>(result.status().code()));
  r->mutable_error()->set_message(std::string(result.status().message()) + where);
}

}  // namespace lumen::worker
