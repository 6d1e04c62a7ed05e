// In-process object values; see memory_store.h.
#include "worker/memory_store.h"

#include <chrono>

namespace lumen::worker {

void MemoryStore::Put(const ObjectId& id, StoredObject object) {
  std::vector<ReadyCallback> callbacks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = callbacks_.find(id);
    if (it != callbacks_.end()) {
      callbacks = std::move(it->second);
      callbacks_.erase(it);
    }
    objects_[id] = object;
  }
  cv_.notify_all();
  for (auto& cb : callbacks) cb(object);
}

std::optional<StoredObject> MemoryStore::Get(const ObjectId& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(id);
  if (it == objects_.end()) return std::nullopt;
  return it->second;
}

bool MemoryStore::Wait(const std::vector<ObjectId>& ids, size_t num_ready, int64_t timeout_ms,
                       std::vector<bool>* ready) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    size_t count = 0;
    ready->assign(ids.size(), false);
    for (size_t i = 0; i < ids.size(); ++i) {
      if (objects_.count(ids[i])) {
        (*ready)[i] = true;
        count++;
      }
    }
    if (count >= num_ready) return true;
    if (shutdown_) return false;
    if (timeout_ms < 0) {
      cv_.wait(lock);
    } else if (cv_.wait_until(lock, deadline) == std::cv_status::timeout &&
               std::chrono::steady_clock::now() >= deadline) {
      // Count once more: an object may have arrived with the timeout.
      count = 0;
      for (size_t i = 0; i < ids.size(); ++i) {
        (*ready)[i] = objects_.count(ids[i]) > 0;
        count += (*ready)[i];
      }
      return count >= num_ready;
    }
  }
}

void MemoryStore::OnReady(const ObjectId& id, ReadyCallback callback) {
  std::optional<StoredObject> present;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = objects_.find(id);
    if (it == objects_.end()) {
      callbacks_[id].push_back(std::move(callback));
      return;
    }
    present = it->second;
  }
  callback(*present);
}

void MemoryStore::Erase(const ObjectId& id) {
  std::lock_guard<std::mutex> lock(mu_);
  objects_.erase(id);
}

size_t MemoryStore::Size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return objects_.size();
}

void MemoryStore::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
}

}  // namespace lumen::worker
