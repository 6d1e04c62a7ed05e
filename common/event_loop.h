// EventLoop: one named thread that runs posted handlers in order. Each
// component (GCS, node manager, core worker) keeps its logic on its own loop,
// so that logic is single-threaded. Handlers carry a name (a string literal)
// and are counted and timed; DebugString() shows the busiest.
//
// Post/PostAfter/RunEvery are safe from any thread. After Stop(), posted
// handlers are dropped without running.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace lumen {

class PeriodicTimer;

class EventLoop {
 public:
  explicit EventLoop(std::string name);
  ~EventLoop();  // Stop()s and joins.
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Starts the thread. Call once.
  void Start();
  // Stops the loop and joins its thread; idempotent. Must not be called from
  // the loop's own thread.
  void Stop();

  // `name` must outlive the loop (use a string literal).
  void Post(const char* name, std::function<void()> fn);
  void PostAfter(const char* name, std::chrono::milliseconds delay, std::function<void()> fn);
  // Runs `fn` every `period` until the returned timer is destroyed. The
  // timer must be destroyed on this loop's thread or after Stop().
  std::unique_ptr<PeriodicTimer> RunEvery(const char* name, std::chrono::milliseconds period,
                                          std::function<void()> fn);

  bool IsCurrentThread() const { return std::this_thread::get_id() == thread_id_; }
  const std::string& name() const { return name_; }
  // Handler counts and times, busiest first.
  std::string DebugString() const;

  class Impl;

 private:
  std::string name_;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};
};

class PeriodicTimer {
 public:
  virtual ~PeriodicTimer() = default;
};

}  // namespace lumen
