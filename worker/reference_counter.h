// ReferenceCounter: the owner's count of references to the objects it owns.
// A reference is an ObjectRef in this process (local) or a pending task that
// takes the object as an argument (submitted). When both reach zero the
// object is freed: `on_free` gets it and every node that holds a copy.
// Thread-safe; on_free runs on the thread that dropped the last reference.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "lumen/id.h"

namespace lumen::worker {

struct ObjectLocation {
  NodeId node;
  std::string node_manager;  // host:port
  friend bool operator==(const ObjectLocation& a, const ObjectLocation& b) {
    return a.node == b.node;
  }
};

class ReferenceCounter {
 public:
  using OnFree = std::function<void(const ObjectId&, const std::vector<ObjectLocation>&)>;
  explicit ReferenceCounter(OnFree on_free) : on_free_(std::move(on_free)) {}

  // A new owned object with one local reference.
  void AddOwned(const ObjectId& id);
  // Unknown ids are ignored (a reference that outlived its runtime).
  void AddLocalRef(const ObjectId& id);
  void RemoveLocalRef(const ObjectId& id);
  void AddSubmittedRefs(const std::vector<ObjectId>& ids);
  void RemoveSubmittedRefs(const std::vector<ObjectId>& ids);
  // Records a copy on a node. False when the object is already freed.
  bool AddLocation(const ObjectId& id, const ObjectLocation& location);
  bool Has(const ObjectId& id) const;
  // Forgets the copies on a node that died. Returns the objects that had
  // one there, each with a copy left on another node (nullopt: none left).
  std::vector<std::pair<ObjectId, std::optional<ObjectLocation>>> RemoveNode(const NodeId& node);
  // Forgets one object's copy on a node (it could not be read there);
  // returns a copy left elsewhere, if any.
  std::optional<ObjectLocation> RemoveLocation(const ObjectId& id, const NodeId& node);
  size_t NumObjects() const;

 private:
  struct Entry {
    int64_t local = 0;
    int64_t submitted = 0;
    std::vector<ObjectLocation> locations;
  };
  // Decrements one count; frees when both are zero.
  void Release(const ObjectId& id, bool submitted);

  OnFree on_free_;
  mutable std::mutex mu_;
  std::unordered_map<ObjectId, Entry> refs_;
};

}  // namespace lumen::worker
