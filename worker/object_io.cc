// Shared-memory puts and fetches; see object_io.h.
#include "worker/object_io.h"

#include <cstring>

#include "rpc/rpc.h"

namespace lumen::worker {
namespace {

int64_t RpcTimeout(int64_t timeout_ms) { return timeout_ms < 0 ? 3'600'000 : timeout_ms; }

}  // namespace

absl::Status ObjectIo::PutInStore(const ObjectId& id, std::string_view data,
                                  const proto::Address& owner) {
  return PutInStore(
      id, data.size(),
      [&data](char* dst) {
        if (!data.empty()) std::memcpy(dst, data.data(), data.size());
      },
      owner);
}

absl::Status ObjectIo::PutInStore(const ObjectId& id, size_t size,
                                  const std::function<void(char*)>& write,
                                  const proto::Address& owner) {
  // Written under a name of its own and renamed into place when sealed, so
  // no reader sees it half written.
  const std::string temp = ShmTempName(store_prefix_, id);
  auto mapping = CreateShmObject(temp, size);
  if (!mapping.ok()) return mapping.status();
  try {
    write((*mapping)->mutable_data());
  } catch (const std::exception& e) {
    UnlinkShmObject(temp);
    return absl::InvalidArgumentError(std::string("cannot serialize the value: ") + e.what());
  }
  mapping->reset();
  proto::SealObjectRequest req;
  req.set_object_id(id.Binary());
  req.set_size(static_cast<int64_t>(size));
  *req.mutable_owner() = owner;
  req.set_temp_name(temp);
  auto sealed = rpc::CallSync<proto::SealObjectReply>(
      [&](auto cb) { node_manager_->SealObject(req, cb, {.timeout_ms = 30'000}); });
  if (!sealed.ok()) {
    UnlinkShmObject(temp);
    return sealed.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<MappedObject>> ObjectIo::Fetch(const proto::ObjectRefInfo& ref,
                                                              int64_t timeout_ms) {
  ObjectId id = ObjectId::FromBinary(ref.object_id());
  if (NodeId::FromBinary(ref.node_id()) != local_node_) {
    proto::PullObjectRequest req;
    *req.mutable_object() = ref;
    req.set_timeout_ms(timeout_ms);
    auto pulled = rpc::CallSync<proto::PullObjectReply>([&](auto cb) {
      node_manager_->PullObject(req, cb, {.timeout_ms = RpcTimeout(timeout_ms)});
    });
    if (!pulled.ok()) return pulled.status();
  }
  auto mapping = OpenShmObject(ShmName(store_prefix_, id));
  if (absl::IsNotFound(mapping.status())) {
    return absl::DataLossError("object " + id.Hex() + " is lost: its copy on node " +
                               local_node_.Short() + " is gone");
  }
  return mapping;
}

}  // namespace lumen::worker
