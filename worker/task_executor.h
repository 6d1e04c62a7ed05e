// TaskExecutor: the worker side of a task. PushTask requests queue up here
// (from the core worker loop) and the worker's main thread runs them one by
// one: map the arguments that are objects, find the function by name, check
// the caller was built with the same signature, call it, and return the
// result inline or through the local store. A user exception becomes an
// error naming the function, the message, the node and the process.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>

#include "proto/worker.pb.h"
#include "rpc/rpc.h"
#include "worker/object_io.h"

namespace lumen::worker {

class TaskExecutor {
 public:
  // `set_current_task` tells the core worker which task runs now (for ids of
  // nested tasks and puts).
  TaskExecutor(ObjectIo* io, std::function<void(const TaskId&)> set_current_task)
      : io_(io), set_current_task_(std::move(set_current_task)) {}

  // Any thread.
  void Enqueue(const proto::PushTaskRequest& request, proto::PushTaskReply* reply,
               rpc::SendReply send);
  // Runs tasks on the calling thread until Stop().
  void Run();
  void Stop();

 private:
  struct Item {
    proto::PushTaskRequest request;
    proto::PushTaskReply* reply;
    rpc::SendReply send;
  };
  void Execute(const proto::TaskSpec& spec, proto::PushTaskReply* reply);
  absl::StatusOr<std::string> Call(const proto::TaskSpec& spec);
  void AddReturn(const proto::TaskSpec& spec, const ObjectId& id,
                 absl::StatusOr<std::string> result, proto::PushTaskReply* reply);

  ObjectIo* io_;
  std::function<void(const TaskId&)> set_current_task_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stopped_ = false;
};

}  // namespace lumen::worker
