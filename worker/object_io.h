// ObjectIo: this process's access to shared-memory objects. Puts create
// the object in the local node's store and seal it there; fetches map a
// local copy, asking the local node manager to pull one first when the
// object lives on another node. Thread-safe; blocks the calling thread, so
// never call it from the core worker's loop. `local_node_manager` must
// deliver callbacks inline (no event loop), so calls finish even while the
// core worker's loop stops.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "lumen/id.h"
#include "node/shm.h"
#include "proto/common.pb.h"
#include "rpc/node_manager_service.h"

namespace lumen::worker {

// Values up to this size travel inline; larger ones go to a node's store.
inline constexpr size_t kMaxInlineBytes = size_t{100} * 1024;

class ObjectIo {
 public:
  ObjectIo(rpc::NodeManagerClient* local_node_manager, NodeId local_node, std::string store_prefix)
      : node_manager_(local_node_manager),
        local_node_(local_node),
        store_prefix_(std::move(store_prefix)) {}

  const NodeId& local_node() const { return local_node_; }

  // Creates `id` in the local store holding `data`, owned by `owner`.
  absl::Status PutInStore(const ObjectId& id, std::string_view data, const proto::Address& owner);
  // The same, with the `size` bytes written in place by `write`.
  absl::Status PutInStore(const ObjectId& id, size_t size, const std::function<void(char*)>& write,
                          const proto::Address& owner);
  // Maps a local copy of `ref` (pulled here first when needed). timeout_ms
  // < 0: no limit.
  absl::StatusOr<std::unique_ptr<MappedObject>> Fetch(const proto::ObjectRefInfo& ref,
                                                      int64_t timeout_ms);

 private:
  rpc::NodeManagerClient* node_manager_;
  NodeId local_node_;
  std::string store_prefix_;
};

}  // namespace lumen::worker
