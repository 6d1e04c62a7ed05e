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

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace boost::asio {
class io_context;
}

namespace lumen {

class PeriodicTimer;
class OneShotTimer;

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

  // A timer that runs one handler at a time, re-armed at will (a deadline
  // that moves). Use it on this loop's thread only; destroy it there or
  // after Stop().
  std::unique_ptr<OneShotTimer> MakeTimer(const char* name);

  // The loop's Boost.Asio context, for sockets whose handlers should run
  // on this loop's thread (no hand-off between an I/O thread and the loop).
  boost::asio::io_context& io_context();

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

// Posts to a loop until Close(): for callbacks of asynchronous calls that
// may come after their owner (and its loop) are gone. Thread-safe.
class LoopGuard {
 public:
  explicit LoopGuard(EventLoop* loop) : loop_(loop) {}
  // False (and `fn` dropped) once closed.
  bool Post(const char* name, std::function<void()> fn) ABSL_LOCKS_EXCLUDED(mu_);
  // From here on nothing is posted; waits for a Post in progress.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  EventLoop* loop_ ABSL_GUARDED_BY(mu_);
};

class OneShotTimer {
 public:
  virtual ~OneShotTimer() = default;  // cancels
  // Runs `fn` after `delay` unless re-armed or cancelled first; arming
  // again replaces the earlier handler.
  virtual void Arm(std::chrono::milliseconds delay, std::function<void()> fn) = 0;
  virtual void Cancel() = 0;
  virtual bool armed() const = 0;
};

}  // namespace lumen
