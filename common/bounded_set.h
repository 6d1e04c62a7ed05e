// A set that remembers at most `capacity` keys, forgetting the oldest first:
// for tombstones (removed groups, dead workers) that must not grow forever.
#pragma once

#include <cstddef>
#include <deque>
#include <unordered_set>

namespace lumen {

template <typename T, typename Hash = std::hash<T>>
class BoundedSet {
 public:
  explicit BoundedSet(size_t capacity) : capacity_(capacity) {}

  // Returns whether `key` is new.
  bool Insert(const T& key) {
    if (!keys_.insert(key).second) return false;
    order_.push_back(key);
    if (order_.size() > capacity_) {
      keys_.erase(order_.front());
      order_.pop_front();
    }
    return true;
  }
  // The key's place in the order is freed when it would have been forgotten.
  void Erase(const T& key) { keys_.erase(key); }
  bool Contains(const T& key) const { return keys_.count(key) > 0; }
  size_t size() const { return keys_.size(); }

 private:
  size_t capacity_;
  std::unordered_set<T, Hash> keys_;
  std::deque<T> order_;
};

}  // namespace lumen
