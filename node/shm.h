// Shared-memory objects: each object in a node's store is one POSIX
// shared-memory file, /dev/shm/<prefix>.<object id hex>, where the prefix
// "lumen.<node manager pid>.<node id>" names the store. Producers on the node
// create and fill the file, then ask the node manager to seal it; readers on
// the node map it read-only and read it without copying. A mapping stays
// valid after the object is freed (unlinked).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <string>

#include "common/status.h"
#include "lumen/id.h"

namespace lumen {

// A mapping of one object; unmapped on destruction. Reads are thread-safe.
class MappedObject {
 public:
  MappedObject(char* data, size_t size) : data_(data), size_(size) {}
  ~MappedObject();
  MappedObject(const MappedObject&) = delete;
  MappedObject& operator=(const MappedObject&) = delete;

  const char* data() const { return data_; }
  char* mutable_data() { return data_; }
  size_t size() const { return size_; }

 private:
  char* data_;
  size_t size_;
};

std::string StorePrefix(pid_t node_manager_pid, const NodeId& node);
std::string ShmName(const std::string& prefix, const ObjectId& id);

// Creates a new object file of `size` bytes and maps it writable.
// AlreadyExists if it exists; ResourceExhausted when /dev/shm is full.
absl::StatusOr<std::unique_ptr<MappedObject>> CreateShmObject(const std::string& name, size_t size);
// Maps an existing object read-only. NotFound if it is not there.
absl::StatusOr<std::unique_ptr<MappedObject>> OpenShmObject(const std::string& name);
// Size of an existing object file.
absl::StatusOr<size_t> ShmObjectSize(const std::string& name);
// Copies `length` bytes at `offset` out of an object.
absl::StatusOr<std::string> ReadShmRange(const std::string& name, size_t offset, size_t length);
void UnlinkShmObject(const std::string& name);
// Removes object files whose node manager process no longer exists (left
// behind by a node manager that was killed). Returns how many were removed.
int SweepStaleShmObjects();
// Removes every object file of one store.
int RemoveShmObjectsWithPrefix(const std::string& prefix);
// Removes the files (sealed or not) of one store's objects made by `job`.
int RemoveShmObjectsOfJob(const std::string& prefix, const JobId& job);
// A name to write `id` under before it is sealed (unique to this process).
std::string ShmTempName(const std::string& prefix, const ObjectId& id);
// Renames an object file (within /dev/shm).
absl::Status RenameShmObject(const std::string& from, const std::string& to);

}  // namespace lumen
