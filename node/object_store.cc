// LocalObjectStore; see object_store.h.
#include "node/object_store.h"

#include "common/logging.h"

namespace lumen::node {

absl::Status LocalObjectStore::Reserve(const ObjectId& id, int64_t size) {
  if (size < 0) return absl::InvalidArgumentError("negative object size");
  if (used_ + size > capacity_) {
    return absl::ResourceExhaustedError(
        "object store of this node is full: " + std::to_string(size) + " more bytes would make " +
        std::to_string(used_ + size) + " of " + std::to_string(capacity_) +
        "; free objects (drop ObjectRefs) or start the node with a larger "
        "--object-store-memory");
  }
  used_ += size;
  objects_[id] = Entry{size, false, {}};
  return absl::OkStatus();
}

absl::Status LocalObjectStore::Seal(const ObjectId& id, int64_t size, const proto::Address& owner,
                                    const std::string& temp_name) {
  const std::string final_name = NameOf(id);
  if (temp_name.rfind(final_name + ".tmp.", 0) != 0 || temp_name.find('/') != std::string::npos) {
    return absl::InvalidArgumentError("bad temporary name '" + temp_name + "' for object " +
                                      id.Hex());
  }
  if (Contains(id)) {  // a retried task made it again: keep the copy readers may use
    UnlinkShmObject(temp_name);
    return absl::OkStatus();
  }
  auto actual = ShmObjectSize(temp_name);
  if (!actual.ok()) return actual.status();
  if (static_cast<int64_t>(*actual) != size) {
    UnlinkShmObject(temp_name);
    return absl::InvalidArgumentError("object " + id.Hex() + " has " + std::to_string(*actual) +
                                      " bytes, not the " + std::to_string(size) + " sealed");
  }
  if (absl::Status s = Reserve(id, size); !s.ok()) {
    UnlinkShmObject(temp_name);
    return s;
  }
  if (absl::Status s = RenameShmObject(temp_name, final_name); !s.ok()) {
    UnlinkShmObject(temp_name);
    used_ -= size;
    objects_.erase(id);
    return s;
  }
  Entry& e = objects_[id];
  e.sealed = true;
  e.owner = owner;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<MappedObject>> LocalObjectStore::CreateForPull(const ObjectId& id,
                                                                              int64_t size) {
  LUMEN_RETURN_IF_ERROR(Reserve(id, size));
  UnlinkShmObject(NameOf(id));  // a leftover of an aborted pull
  auto mapped = CreateShmObject(NameOf(id), static_cast<size_t>(size));
  if (!mapped.ok()) {
    used_ -= size;
    objects_.erase(id);
  }
  return mapped;
}

void LocalObjectStore::CommitPull(const ObjectId& id, const proto::Address& owner) {
  auto it = objects_.find(id);
  if (it == objects_.end()) return;
  it->second.sealed = true;
  it->second.owner = owner;
}

void LocalObjectStore::AbortPull(const ObjectId& id) {
  auto it = objects_.find(id);
  if (it == objects_.end() || it->second.sealed) return;
  used_ -= it->second.size;
  objects_.erase(it);
  UnlinkShmObject(NameOf(id));
}

bool LocalObjectStore::Contains(const ObjectId& id) const {
  auto it = objects_.find(id);
  return it != objects_.end() && it->second.sealed;
}

int64_t LocalObjectStore::SizeOf(const ObjectId& id) const {
  auto it = objects_.find(id);
  return it == objects_.end() ? -1 : it->second.size;
}

absl::StatusOr<std::string> LocalObjectStore::ReadChunk(const ObjectId& id, int64_t offset,
                                                        int64_t length) const {
  auto it = objects_.find(id);
  if (it == objects_.end() || !it->second.sealed) {
    return absl::NotFoundError("this node no longer holds object " + id.Hex());
  }
  if (offset < 0 || length < 0 || offset > it->second.size) {
    return absl::OutOfRangeError("bad range of object " + id.Hex());
  }
  length = std::min(length, it->second.size - offset);
  return ReadShmRange(NameOf(id), static_cast<size_t>(offset), static_cast<size_t>(length));
}

void LocalObjectStore::Free(const std::vector<ObjectId>& ids) {
  for (const ObjectId& id : ids) {
    auto it = objects_.find(id);
    if (it == objects_.end() || !it->second.sealed) continue;  // pulls in flight finish first
    used_ -= it->second.size;
    objects_.erase(it);
    UnlinkShmObject(NameOf(id));
  }
}

std::vector<ObjectId> LocalObjectStore::AllIds() const {
  std::vector<ObjectId> out;
  for (const auto& [id, e] : objects_) out.push_back(id);
  return out;
}

void LocalObjectStore::Clear() {
  for (const auto& [id, e] : objects_) UnlinkShmObject(NameOf(id));
  objects_.clear();
  used_ = 0;
}

}  // namespace lumen::node
