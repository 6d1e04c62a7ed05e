// PullManager: copies objects from other nodes' stores into this one, in
// chunks with a few requests in flight, one pull per object however many
// callers wait for it. When a copy lands, the object's owner is told (so it
// can free the copy later). Runs on the node manager loop.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lumen/id.h"
#include "node/object_store.h"
#include "rpc/client_pool.h"
#include "rpc/core_worker_service.h"
#include "rpc/node_manager_service.h"

namespace lumen::node {

struct PullOptions {
  int64_t chunk_bytes = 8 << 20;
  int max_chunks_in_flight = 4;
};

class PullManager {
 public:
  using Done = std::function<void(absl::Status)>;
  // Returns the node manager address of a live node, or "" when the node is
  // dead or unknown.
  using AddressOf = std::function<std::string(const NodeId&)>;

  PullManager(LocalObjectStore* store, NodeId self, proto::Address self_address,
              AddressOf address_of, rpc::ClientPool<rpc::NodeManagerClient>* nodes,
              rpc::ClientPool<rpc::CoreWorkerClient>* owners, PullOptions options = {})
      : store_(store),
        self_(self),
        self_address_(std::move(self_address)),
        address_of_(std::move(address_of)),
        nodes_(nodes),
        owners_(owners),
        options_(options) {}

  // Makes `ref` local; `done` gets DataLoss when no live node has it.
  void Pull(const proto::ObjectRefInfo& ref, Done done);
  // Fails pulls from a node that died.
  void OnNodeDead(const NodeId& node);
  // Abandons pulls of the job's objects.
  void OnJobFinished(const JobId& job);
  void Shutdown();

  int64_t objects_pulled() const { return objects_pulled_; }
  int64_t bytes_pulled() const { return bytes_pulled_; }

 private:
  struct Active {
    proto::ObjectRefInfo ref;
    NodeId source;
    std::string source_address;
    std::unique_ptr<MappedObject> mapping;
    int64_t next_offset = 0;
    int64_t received = 0;
    int in_flight = 0;
    std::vector<Done> waiters;
    std::chrono::steady_clock::time_point started;
    uint64_t generation = 0;  // replies of an earlier pull of the same id are ignored
  };

  void IssueChunks(const ObjectId& id);
  void OnChunk(const ObjectId& id, uint64_t generation, int64_t offset, int64_t length,
               absl::Status status, const std::string& data);
  void Complete(const ObjectId& id);
  void Fail(const ObjectId& id, const absl::Status& status);

  LocalObjectStore* store_;
  NodeId self_;
  proto::Address self_address_;
  AddressOf address_of_;
  rpc::ClientPool<rpc::NodeManagerClient>* nodes_;
  rpc::ClientPool<rpc::CoreWorkerClient>* owners_;
  PullOptions options_;
  std::map<ObjectId, Active> active_;
  uint64_t next_generation_ = 1;
  int64_t objects_pulled_ = 0;
  int64_t bytes_pulled_ = 0;
};

// The DataLoss error for an object whose copy is gone.
absl::Status ObjectLostError(const ObjectId& id, const std::string& why);

}  // namespace lumen::node
