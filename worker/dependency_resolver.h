// DependencyResolver: waits for the arguments of a pending task that are
// objects. Small values are then copied into the task's spec; large ones stay
// references naming the node that holds them (and count toward where the
// task would rather run); an argument that failed fails the task. Shared by
// normal and actor tasks. Runs on the core worker loop.
#pragma once

#include <functional>

#include "common/event_loop.h"
#include "worker/memory_store.h"
#include "worker/task_manager.h"

namespace lumen::worker {

class DependencyResolver {
 public:
  DependencyResolver(EventLoop* loop, MemoryStore* store, TaskManager* tasks)
      : loop_(loop), store_(store), tasks_(tasks) {}

  // Calls `ready(id)` once every object argument of task `id` resolved (at
  // once when it has none).
  void Resolve(const TaskId& id, std::function<void(const TaskId&)> ready);

 private:
  void OnArgReady(const TaskId& id, int index, const StoredObject& object,
                  const std::function<void(const TaskId&)>& ready);

  EventLoop* loop_;
  MemoryStore* store_;
  TaskManager* tasks_;
};

}  // namespace lumen::worker
