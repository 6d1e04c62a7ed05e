// Running tasks and actor calls in a worker; see task_executor.h.
#include "worker/task_executor.h"

#include <algorithm>

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

absl::Status NotInPackage(const std::string& name) {
  return absl::NotFoundError(
      "function " + name +
      " is not in this job's code package (registered here: " + RegisteredFunctions() +
      "). Register it with LUMEN_REMOTE in a shared library the driver links, or list the "
      "library in Config::code_paths");
}

}  // namespace

TaskExecutor::~TaskExecutor() { Stop(); }

void TaskExecutor::Enqueue(const proto::PushTaskRequest& request, proto::PushTaskReply* reply,
                           rpc::SendReply send) {
  auto owned = std::make_shared<const proto::PushTaskRequest>(request);
  Push({Item{&owned->spec(), reply, std::move(send), owned}});
}

void TaskExecutor::EnqueueActorCalls(const proto::PushActorTasksRequest& request,
                                     proto::PushActorTasksReply* reply, rpc::SendReply send) {
  auto owned = std::make_shared<const proto::PushActorTasksRequest>(request);
  int n = owned->specs_size();
  if (n == 0) {
    send(absl::OkStatus());
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (draining_) {
      send(absl::AbortedError(kActorMoving));
      return;
    }
  }
  for (int i = 0; i < n; ++i) reply->add_results();
  auto remaining = std::make_shared<std::atomic<int>>(n);
  auto answer = std::make_shared<rpc::SendReply>(std::move(send));
  std::vector<Item> items;
  items.reserve(n);
  for (int i = 0; i < n; ++i) {
    items.push_back(Item{&owned->specs(i), reply->mutable_results(i),
                         [remaining, answer](absl::Status s) {
                           if (--*remaining == 0) (*answer)(absl::OkStatus());
                         },
                         owned});
  }
  Push(std::move(items));
}

void TaskExecutor::Push(std::vector<Item> items) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!stopped_) {
      size_t n = items.size();
      for (auto& item : items) queue_.push_back(std::move(item));
      lock.unlock();
      // Wake as many threads as there are calls, not every thread of a
      // threaded actor (hundreds of them would all wake for one call).
      for (size_t i = 0; i < std::min(n, extra_threads_.size() + 1); ++i) cv_.notify_one();
      return;
    }
  }
  for (auto& item : items) item.done(absl::UnavailableError("worker is stopping"));
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
      running_++;
    }
    Execute(*item.spec, item.reply);
    item.done(absl::OkStatus());
    std::vector<std::function<void()>> drained;
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_--;
      if (draining_ && running_ == 0 && queue_.empty()) drained.swap(drained_);
    }
    for (auto& f : drained) f();
  }
}

void TaskExecutor::Drain(std::function<void()> drained) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    draining_ = true;
    if (running_ > 0 || !queue_.empty()) {
      drained_.push_back(std::move(drained));
      return;
    }
  }
  drained();
}

void TaskExecutor::Stop() {
  std::deque<Item> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    dropped.swap(queue_);
  }
  cv_.notify_all();
  for (auto& item : dropped) item.done(absl::UnavailableError("worker is stopping"));
  for (auto& t : extra_threads_) {
    if (t.joinable() && t.get_id() != std::this_thread::get_id()) t.join();
  }
  extra_threads_.clear();
}

void TaskExecutor::Execute(const proto::TaskSpec& spec, proto::PushTaskReply* reply) {
  TaskId task = TaskId::FromBinary(spec.task_id());
  set_current_task_(task);
  reply->set_node_id(io_->local_node().Binary());
  reply->set_pid(::getpid());
  if (on_task_state_) on_task_state_(spec, proto::RUNNING, "");
  absl::Status outcome;
  if (spec.type() == proto::ACTOR_CREATION_TASK) {
    absl::Status created = CreateActor(spec);
    if (!created.ok()) AddReturn(spec, ObjectId(), created, reply);
    outcome = created;
  } else {
    absl::StatusOr<std::string> result = Call(spec);
    outcome = result.status();
    int returns = std::max(1, spec.num_returns());
    for (int i = 1; i < returns; ++i) AddReturn(spec, ReturnObjectId(task, i), result, reply);
    AddReturn(spec, ReturnObjectId(task, returns), std::move(result), reply);
  }
  if (on_task_state_) {
    on_task_state_(spec, outcome.ok() ? proto::FINISHED : proto::FAILED,
                   outcome.ok() ? "" : outcome.ToString());
  }
  set_current_task_(TaskId::Nil());
}

absl::StatusOr<std::vector<internal::ArgView>> TaskExecutor::MapArgs(
    const proto::TaskSpec& spec, std::vector<std::unique_ptr<MappedObject>>* mapped) {
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
    mapped->push_back(std::move(*object));
  }
  return args;
}

absl::Status TaskExecutor::CreateActor(const proto::TaskSpec& spec) {
  const internal::FunctionInfo* fn = internal::FindFunctionByName(spec.function_name());
  if (fn == nullptr || fn->kind != internal::FunctionInfo::Kind::kActorFactory) {
    return NotInPackage(spec.function_name());
  }
  std::vector<std::unique_ptr<MappedObject>> mapped;
  auto args = MapArgs(spec, &mapped);
  if (!args.ok()) return args.status();
  auto instance = fn->create(*args);
  if (!instance.ok()) return instance.status();
  actor_ = std::move(*instance);
  actor_class_ = fn->class_type;
  on_actor_created_(ActorId::FromBinary(spec.actor_id()), spec.restart_count());
  int threads = spec.actor_options().max_concurrency();
  for (int i = 1; i < threads; ++i) extra_threads_.emplace_back([this] { Run(); });
  return absl::OkStatus();
}

absl::StatusOr<std::string> TaskExecutor::Call(const proto::TaskSpec& spec) {
  const internal::FunctionInfo* fn = internal::FindFunctionByName(spec.function_name());
  if (fn == nullptr) return NotInPackage(spec.function_name());
  if (!spec.signature().empty() && spec.signature() != fn->signature) {
    return absl::InvalidArgumentError("function " + spec.function_name() + " has type " +
                                      internal::Demangle(fn->signature.c_str()) +
                                      " in the code package but the caller was " + "built with " +
                                      internal::Demangle(spec.signature().c_str()) +
                                      ": rebuild the driver and its libraries together");
  }
  bool method = fn->kind == internal::FunctionInfo::Kind::kActorMethod;
  if (method != (spec.type() == proto::ACTOR_TASK)) {
    return absl::InvalidArgumentError(spec.function_name() +
                                      (method ? " is an actor method: call it on an actor handle"
                                              : " is not a method of an actor"));
  }
  if (method && (actor_ == nullptr || fn->class_type != actor_class_)) {
    return absl::FailedPreconditionError(spec.function_name() +
                                         " is not a method of the actor this worker hosts");
  }
  std::vector<std::unique_ptr<MappedObject>> mapped;
  auto args = MapArgs(spec, &mapped);
  if (!args.ok()) return args.status();
  return method ? fn->call(actor_.get(), *args) : fn->invoke(*args);
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
