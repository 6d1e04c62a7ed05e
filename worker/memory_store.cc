// In-process object values; see memory_store.h.
#include "worker/memory_store.h"

#include <chrono>

namespace lumen::worker {

namespace {
thread_local int t_deferred = 0;  // DeferWakeups alive on this thread
}  // namespace

MemoryStore::DeferWakeups::DeferWakeups(MemoryStore* store) : store_(store) { ++t_deferred; }

MemoryStore::DeferWakeups::~DeferWakeups() {
  if (--t_deferred == 0) store_->WakeWaiters();
}

void MemoryStore::WakeWaiters() { cv_.notify_all(); }

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
  if (t_deferred == 0) WakeWaiters();
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
  ready->assign(ids.size(), false);
  std::vector<size_t> missing(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) missing[i] = i;
  size_t count = 0;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    // Look only at what was still missing: many wakeups stay cheap.
    size_t kept = 0;
    for (size_t i : missing) {
      if (objects_.count(ids[i])) {
        (*ready)[i] = true;
        count++;
      } else {
        missing[kept++] = i;
      }
    }
    missing.resize(kept);
    if (count >= num_ready) return true;
    if (shutdown_) return false;
    if (timeout_ms < 0) {
      cv_.wait(lock);
    } else if (cv_.wait_until(lock, deadline) == std::cv_status::timeout &&
               std::chrono::steady_clock::now() >= deadline) {
      for (size_t i : missing) {  // one last look: an object may have come with the timeout
        if (objects_.count(ids[i])) {
          (*ready)[i] = true;
          count++;
        }
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
