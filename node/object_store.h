// LocalObjectStore: the node's table of objects in shared memory (see
// shm.h), with capacity accounting. Objects are created by workers and
// drivers on this node (then sealed here) or by pulls from other nodes.
// Runs on the node manager loop.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lumen/id.h"
#include "node/shm.h"
#include "proto/common.pb.h"

namespace lumen::node {

class LocalObjectStore {
 public:
  LocalObjectStore(std::string prefix, int64_t capacity)
      : prefix_(std::move(prefix)), capacity_(capacity) {}
  ~LocalObjectStore() { Clear(); }

  const std::string& prefix() const { return prefix_; }
  std::string NameOf(const ObjectId& id) const { return ShmName(prefix_, id); }

  // Records an object a local process wrote under `temp_name` (see
  // ShmTempName) with `size` bytes, and renames it into place. If the object
  // is already here (a retried task made it again) the new copy is dropped.
  // ResourceExhausted (and the file is removed) when it does not fit.
  absl::Status Seal(const ObjectId& id, int64_t size, const proto::Address& owner,
                    const std::string& temp_name);
  // Reserves room for an object being pulled and creates its file.
  absl::StatusOr<std::unique_ptr<MappedObject>> CreateForPull(const ObjectId& id, int64_t size);
  void CommitPull(const ObjectId& id, const proto::Address& owner);
  void AbortPull(const ObjectId& id);

  bool Contains(const ObjectId& id) const;
  int64_t SizeOf(const ObjectId& id) const;
  absl::StatusOr<std::string> ReadChunk(const ObjectId& id, int64_t offset, int64_t length) const;
  // Unlinks the objects; unknown ids are ignored.
  void Free(const std::vector<ObjectId>& ids);
  std::vector<ObjectId> AllIds() const;
  void Clear();

  int64_t used() const { return used_; }
  int64_t capacity() const { return capacity_; }
  int64_t num_objects() const { return static_cast<int64_t>(objects_.size()); }

 private:
  struct Entry {
    int64_t size = 0;
    bool sealed = false;
    proto::Address owner;
  };
  absl::Status Reserve(const ObjectId& id, int64_t size);

  std::string prefix_;
  int64_t capacity_;
  int64_t used_ = 0;
  std::map<ObjectId, Entry> objects_;
};

}  // namespace lumen::node
