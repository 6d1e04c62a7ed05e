// MemoryStore: what this process knows of the values of objects it owns:
// the bytes of a small value, where a large value's primary copy is, or the
// error that replaced it. Get/Wait block on it; the submitter subscribes to
// arguments becoming ready. Thread-safe.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "lumen/id.h"

namespace lumen::worker {

struct StoredObject {
  enum class Kind { kValue, kInStore, kError };
  Kind kind = Kind::kValue;
  std::shared_ptr<const std::string> value;  // kValue
  NodeId node;                               // kInStore: node of the primary copy
  std::string node_manager;                  // kInStore: that node's manager, host:port
  int64_t size = 0;                          // kInStore
  absl::Status error;                        // kError

  static StoredObject Value(std::string bytes) {
    StoredObject o;
    o.value = std::make_shared<const std::string>(std::move(bytes));
    return o;
  }
  static StoredObject InStore(const NodeId& node, std::string node_manager, int64_t size) {
    StoredObject o;
    o.kind = Kind::kInStore;
    o.node = node;
    o.node_manager = std::move(node_manager);
    o.size = size;
    return o;
  }
  static StoredObject Error(absl::Status error) {
    StoredObject o;
    o.kind = Kind::kError;
    o.error = std::move(error);
    return o;
  }
};

class MemoryStore {
 public:
  using ReadyCallback = std::function<void(const StoredObject&)>;

  // While one lives, Puts on this thread do not wake waiters; they are woken
  // once at its end (for many results arriving together).
  class DeferWakeups {
   public:
    explicit DeferWakeups(MemoryStore* store);
    ~DeferWakeups();

   private:
    MemoryStore* store_;
  };

  // Stores (or replaces) the object and wakes whoever waits for it. Ready
  // callbacks run here, on the calling thread.
  void Put(const ObjectId& id, StoredObject object);
  std::optional<StoredObject> Get(const ObjectId& id) const;
  // Waits until `num_ready` of `ids` are present or `timeout_ms` passed (< 0:
  // forever) or Shutdown(); marks `ready`. Returns whether enough were.
  bool Wait(const std::vector<ObjectId>& ids, size_t num_ready, int64_t timeout_ms,
            std::vector<bool>* ready);
  // Calls `callback` once `id` is present: now, or from the Put that stores it.
  void OnReady(const ObjectId& id, ReadyCallback callback);
  void Erase(const ObjectId& id);
  size_t Size() const;
  // Wakes every waiter; later waits return at once.
  void Shutdown();

 private:
  void WakeWaiters();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool shutdown_ = false;
  std::unordered_map<ObjectId, StoredObject> objects_;
  std::unordered_map<ObjectId, std::vector<ReadyCallback>> callbacks_;
};

}  // namespace lumen::worker
