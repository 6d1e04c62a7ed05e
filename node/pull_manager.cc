// Chunked pulls between node stores; see pull_manager.h.
#include "node/pull_manager.h"

#include <cstring>

#include "common/ids.h"
#include "common/logging.h"
#include "rpc/rpc.h"

namespace lumen::node {

absl::Status ObjectLostError(const ObjectId& id, const std::string& why) {
  return absl::DataLossError("object " + id.Hex() + " is lost: " + why);
}

void PullManager::Pull(const proto::ObjectRefInfo& ref, Done done) {
  ObjectId id = ObjectId::FromBinary(ref.object_id());
  if (store_->Contains(id)) {
    done(absl::OkStatus());
    return;
  }
  if (auto it = active_.find(id); it != active_.end()) {
    it->second.waiters.push_back(std::move(done));
    return;
  }
  NodeId source = NodeId::FromBinary(ref.node_id());
  if (source == self_) {
    done(ObjectLostError(id, "this node should hold it but does not (was it freed?)"));
    return;
  }
  std::string address = address_of_(source);
  if (address.empty()) {
    done(ObjectLostError(id, "node " + source.Short() + " that held it is dead or unknown"));
    return;
  }
  auto mapping = store_->CreateForPull(id, ref.size());
  if (!mapping.ok()) {
    done(mapping.status());
    return;
  }
  Active& a = active_[id];
  a.ref = ref;
  a.source = source;
  a.source_address = address;
  a.mapping = std::move(*mapping);
  a.waiters.push_back(std::move(done));
  a.started = std::chrono::steady_clock::now();
  a.generation = next_generation_++;
  if (ref.size() == 0) {
    Complete(id);
    return;
  }
  IssueChunks(id);
}

void PullManager::IssueChunks(const ObjectId& id) {
  Active& a = active_[id];
  rpc::NodeManagerClient* client = nodes_->Get(a.source_address);
  uint64_t generation = a.generation;
  while (a.in_flight < options_.max_chunks_in_flight && a.next_offset < a.ref.size()) {
    int64_t offset = a.next_offset;
    int64_t length = std::min(options_.chunk_bytes, a.ref.size() - offset);
    a.next_offset += length;
    a.in_flight++;
    proto::ReadObjectChunkRequest req;
    req.set_object_id(a.ref.object_id());
    req.set_offset(offset);
    req.set_length(length);
    client->ReadObjectChunk(
        req,
        [this, id, generation, offset, length](absl::Status s, proto::ReadObjectChunkReply reply) {
          OnChunk(id, generation, offset, length, s, reply.data());
        },
        rpc::CallOptions{.timeout_ms = 60'000, .retry_for_ms = 2'000});
  }
}

void PullManager::OnChunk(const ObjectId& id, uint64_t generation, int64_t offset, int64_t length,
                          absl::Status status, const std::string& data) {
  auto it = active_.find(id);
  // Failed already, or a reply to an earlier pull of the same object.
  if (it == active_.end() || it->second.generation != generation) return;
  Active& a = it->second;
  a.in_flight--;
  if (!status.ok()) {
    if (absl::IsNotFound(status)) {
      Fail(id, ObjectLostError(id, "node " + a.source.Short() + " no longer holds it"));
    } else {
      Fail(id, Annotate(status, "pulling object " + id.Hex() + " from node " + a.source.Short()));
    }
    return;
  }
  if (static_cast<int64_t>(data.size()) != length) {
    Fail(id, absl::InternalError("short chunk of object " + id.Hex()));
    return;
  }
  std::memcpy(a.mapping->mutable_data() + offset, data.data(), data.size());
  a.received += length;
  bytes_pulled_ += length;
  if (a.received == a.ref.size()) {
    Complete(id);
  } else {
    IssueChunks(id);
  }
}

void PullManager::Complete(const ObjectId& id) {
  Active a = std::move(active_[id]);
  active_.erase(id);
  a.mapping.reset();
  store_->CommitPull(id, a.ref.owner());
  objects_pulled_++;
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a.started)
          .count();
  LUMEN_LOG_DEBUG("pulled object={} bytes={} from node={} in {:.1f} ms ({:.0f} MB/s)", id.Short(),
                  a.ref.size(), a.source.Short(), ms,
                  a.ref.size() / 1048.576 / std::max(ms, 0.001));
  if (!a.ref.owner().host().empty()) {
    proto::AddObjectLocationRequest req;
    req.set_object_id(a.ref.object_id());
    req.set_node_id(self_.Binary());
    *req.mutable_node_manager() = self_address_;
    owners_->Get(rpc::JoinHostPort(a.ref.owner().host(), a.ref.owner().port()))
        ->AddObjectLocation(req, [this, id](absl::Status s, proto::AddObjectLocationReply r) {
          // The owner already freed it: nobody will ask to free this copy.
          // (An unreachable owner's objects go when its job ends.)
          if (s.ok() && r.freed()) store_->Free({id});
        });
  }
  for (auto& w : a.waiters) w(absl::OkStatus());
}

void PullManager::Fail(const ObjectId& id, const absl::Status& status) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  std::vector<Done> waiters = std::move(it->second.waiters);
  it->second.mapping.reset();
  active_.erase(it);
  store_->AbortPull(id);
  LUMEN_LOG_WARN("pull failed object={}: {}", id.Short(), status.ToString());
  for (auto& w : waiters) w(status);
}

void PullManager::OnNodeDead(const NodeId& node) {
  std::vector<ObjectId> doomed;
  for (const auto& [id, a] : active_) {
    if (a.source == node) doomed.push_back(id);
  }
  for (const auto& id : doomed) Fail(id, ObjectLostError(id, "node " + node.Short() + " died"));
}

void PullManager::OnJobFinished(const JobId& job) {
  std::vector<ObjectId> doomed;
  for (const auto& [id, a] : active_) {
    if (JobIdOfTask(TaskIdOfObject(id)) == job) doomed.push_back(id);
  }
  for (const auto& id : doomed) Fail(id, absl::CancelledError("job " + job.Hex() + " finished"));
}

void PullManager::Shutdown() {
  std::vector<ObjectId> ids;
  for (const auto& [id, a] : active_) ids.push_back(id);
  for (const auto& id : ids) Fail(id, absl::UnavailableError("node manager is stopping"));
}

}  // namespace lumen::node
