// TaskEventBuffer: a process's task events on their way to the GCS (the
// state API, gcs/task_events.h). Owners record submissions, retries and
// failures; workers record runs and their ends. Events wait here and go in
// one batch a second; when the GCS is slow or away at most `capacity` wait,
// and the ones that do not fit are counted and the count sent instead, so
// the task path never blocks on the state API. Thread-safe.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "proto/gcs.pb.h"

namespace lumen::rpc {
class GcsClient;
}

namespace lumen::worker {

class TaskEventBuffer {
 public:
  explicit TaskEventBuffer(size_t capacity = 20'000) : capacity_(capacity) {}

  // An event for `spec` entering `state`; `error` for FAILED. `where`
  // (node, worker, pid) only from the worker running it.
  void Record(const proto::TaskSpec& spec, proto::TaskState state, const std::string& error = "",
              const proto::Address* where = nullptr);
  // Sends what waits (one call; nothing when empty). `sync`: waits for the
  // answer, up to timeout_ms (at shutdown).
  void Flush(rpc::GcsClient* gcs, bool sync = false, int64_t timeout_ms = 5'000);
  size_t dropped() const { return dropped_total_.load(); }

 private:
  const size_t capacity_;
  std::mutex mu_;
  std::vector<proto::TaskEvent> events_;  // guarded by mu_
  int64_t dropped_ = 0;                   // since the last flush; guarded by mu_
  // A batch is on its way (shared with the call's callback, which may
  // come after this buffer is gone).
  std::shared_ptr<std::atomic<bool>> sending_ = std::make_shared<std::atomic<bool>>(false);
  std::atomic<size_t> dropped_total_{0};
};

}  // namespace lumen::worker
