// TaskExecutor: the worker side of tasks and actors. Pushed work queues up
// here (from the core worker loop) and executing threads take it in order:
// the worker's main thread always, plus max_concurrency - 1 more once it
// hosts an actor that allows calls at once. For each task or call it maps
// the arguments that are objects, finds the function by name, checks the
// caller was built with the same signature, calls it, and returns the result
// inline or through the local store. An actor creation runs the factory and
// keeps the instance for the methods that follow. A user exception becomes
// an error naming the function, the message, the node and the process.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lumen/internal/registry.h"
#include "proto/gcs.pb.h"
#include "proto/worker.pb.h"
#include "rpc/rpc.h"
#include "worker/object_io.h"

namespace lumen::worker {

// What a draining actor's worker answers calls it will not run.
inline constexpr char kActorMoving[] = "the actor is moving to another node";

class TaskExecutor {
 public:
  // `set_current_task` tells the core worker which task the calling thread
  // runs (for the ids of nested tasks and puts); `on_actor_created` which
  // actor this worker now hosts; `on_task_state` when a task starts
  // (RUNNING) and how it ended (FINISHED, or FAILED with the error).
  using TaskStateFn =
      std::function<void(const proto::TaskSpec&, proto::TaskState, const std::string& error)>;
  TaskExecutor(ObjectIo* io, std::function<void(const TaskId&)> set_current_task,
               std::function<void(const ActorId&, int restarts)> on_actor_created,
               TaskStateFn on_task_state = nullptr)
      : io_(io),
        set_current_task_(std::move(set_current_task)),
        on_actor_created_(std::move(on_actor_created)),
        on_task_state_(std::move(on_task_state)) {}
  ~TaskExecutor();

  // Any thread. A task, or an actor's creation.
  void Enqueue(const proto::PushTaskRequest& request, proto::PushTaskReply* reply,
               rpc::SendReply send);
  // Calls on the hosted actor; answered once all have run.
  void EnqueueActorCalls(const proto::PushActorTasksRequest& request,
                         proto::PushActorTasksReply* reply, rpc::SendReply send);
  // Takes no more actor calls (they get ABORTED with kActorMoving) and calls
  // `drained` once the queued and running ones are done.
  void Drain(std::function<void()> drained);
  // Runs queued work on the calling thread until Stop().
  void Run();
  void Stop();

 private:
  struct Item {
    const proto::TaskSpec* spec;
    proto::PushTaskReply* reply;
    std::function<void(absl::Status)> done;
    std::shared_ptr<const void> keep_alive;  // owns `spec`
  };
  void Push(std::vector<Item> items);
  void Execute(const proto::TaskSpec& spec, proto::PushTaskReply* reply);
  absl::StatusOr<std::string> Call(const proto::TaskSpec& spec);
  absl::Status CreateActor(const proto::TaskSpec& spec);
  absl::StatusOr<std::vector<internal::ArgView>> MapArgs(
      const proto::TaskSpec& spec, std::vector<std::unique_ptr<MappedObject>>* mapped);
  void AddReturn(const proto::TaskSpec& spec, const ObjectId& id,
                 absl::StatusOr<std::string> result, proto::PushTaskReply* reply);

  ObjectIo* io_;
  std::function<void(const TaskId&)> set_current_task_;
  std::function<void(const ActorId&, int)> on_actor_created_;
  TaskStateFn on_task_state_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stopped_ = false;
  bool draining_ = false;
  int running_ = 0;
  std::vector<std::function<void()>> drained_;
  std::vector<std::thread> extra_threads_;
  // The hosted actor; set once, before any of its calls runs.
  std::shared_ptr<void> actor_;
  std::string actor_class_;
};

}  // namespace lumen::worker
