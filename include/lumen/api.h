// lumen's C++ API: remote tasks, objects and the cluster they run on.
//
//   int Add(int a, int b) { return a + b; }
//   LUMEN_REMOTE(Add);                        // in a shared library
//
//   lumen::Init();                            // no address: a private local cluster
//   auto r = lumen::Task(Add).Remote(1, 2);   // ObjectRef<int>, returns at once
//   int x = *lumen::Get(r);                   // absl::StatusOr<int>
//   lumen::Shutdown();
//
// Errors come back as absl::Status: from Init, and from Get/Wait for work
// that failed (a user exception, a dead worker out of retries, resources no
// node has, an unreachable cluster). Nothing here throws; everything may be
// called from any thread between Init() and Shutdown().
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lumen/actor.h"
#include "lumen/config.h"
#include "lumen/id.h"
#include "lumen/internal/args.h"
#include "lumen/internal/registry.h"
#include "lumen/internal/runtime.h"
#include "lumen/object_ref.h"
#include "lumen/placement_group.h"
#include "lumen/serialization.h"

namespace lumen {

// Connects to the cluster at config.address (or $LUMEN_ADDRESS), or starts a
// private local cluster, registers this program as a job and uploads its code
// package. FailedPrecondition if already initialized.
absl::Status Init(const Config& config = Config());
// Ends the job: its workers stop, its objects are freed and a private local
// cluster is stopped with no process left. Safe to call twice.
void Shutdown();
bool IsInitialized();

template <typename F>
class TaskCaller;

// A remote call of `f`, a function registered with LUMEN_REMOTE.
template <typename F>
TaskCaller<F> Task(F f) {
  return TaskCaller<F>(f);
}

template <typename R, typename... Params>
class TaskCaller<R (*)(Params...)> {
 public:
  explicit TaskCaller(R (*f)(Params...)) : f_(f) {}

  // Resources the task holds while it runs ("CPU", "GPU", "memory" in bytes,
  // or custom names). Default {CPU: 1}.
  TaskCaller& SetResource(const std::string& name, double amount) {
    options_.resources[name] = amount;
    return *this;
  }
  TaskCaller& SetResources(const std::map<std::string, double>& resources) {
    options_.resources = resources;
    return *this;
  }
  // Times to run it again when its worker dies (default 3). A user
  // exception is not retried.
  TaskCaller& SetMaxRetries(int retries) {
    options_.max_retries = retries;
    return *this;
  }
  TaskCaller& SetSchedulingStrategy(const SchedulingStrategy& strategy) {
    options_.strategy = strategy;
    return *this;
  }

  // Runs it in a bundle of a placement group (-1: any bundle).
  TaskCaller& SetPlacementGroup(const PlacementGroupId& group, int bundle_index = -1) {
    options_.placement_group = group;
    options_.bundle_index = bundle_index;
    return *this;
  }
  TaskCaller& SetPlacementGroup(const PlacementGroup& group, int bundle_index = -1) {
    return SetPlacementGroup(group.ID(), bundle_index);
  }

  // Submits the task and returns at once. Each argument is a value
  // (converted to the parameter's type) or an ObjectRef of that type, which
  // is resolved before the task runs.
  template <typename... Args>
  ObjectRef<R> Remote(Args&&... args) {
    (void)sizeof(internal::RemoteFunctionTraits<R (*)(Params...)>);
    internal::Runtime* rt = internal::CurrentRuntime();
    if (rt == nullptr) return ObjectRef<R>();
    const internal::FunctionInfo* info = internal::FindFunctionByKey(internal::KeyOf(f_));
    options_.function_name = info ? info->name : "";
    options_.signature = typeid(R(Params...)).name();
    auto packed = internal::PackArgs<std::tuple<Params...>>(std::forward<Args>(args)...);
    return ObjectRef<R>::AdoptId(rt->Submit(options_, std::move(packed)));
  }

 private:
  R (*f_)(Params...);
  internal::TaskOptions options_;
};

// Stores `value` in the cluster (owned by this process) and returns a
// reference to pass to tasks. Large values go to this node's shared-memory
// store. A failure (store full) surfaces at Get.
template <typename T>
ObjectRef<std::decay_t<T>> Put(T&& value) {
  internal::Runtime* rt = internal::CurrentRuntime();
  if (rt == nullptr) return ObjectRef<std::decay_t<T>>();
  size_t size = internal::SerializedSize(value);
  return ObjectRef<std::decay_t<T>>::AdoptId(
      rt->Put(size, [&value](char* dst) { internal::SerializeTo(value, dst); }));
}

namespace internal {
absl::Status NotInitializedError();
absl::Status NilRefError();

// The ids of `refs`; an error if lumen is not running or a ref is nil.
template <typename Ref>
absl::StatusOr<std::vector<ObjectId>> IdsOf(const std::vector<Ref>& refs) {
  if (CurrentRuntime() == nullptr) return NotInitializedError();
  std::vector<ObjectId> ids;
  ids.reserve(refs.size());
  for (const auto& r : refs) {
    if (r.IsNil()) return NilRefError();
    ids.push_back(r.ID());
  }
  return ids;
}
}  // namespace internal

// The values of `refs`, waiting for them up to `timeout_ms` (< 0: forever).
template <typename T>
absl::StatusOr<std::vector<T>> Get(const std::vector<ObjectRef<T>>& refs, int64_t timeout_ms = -1) {
  static_assert(!std::is_void_v<T>, "use Wait() for ObjectRef<void>");
  auto ids = internal::IdsOf(refs);
  if (!ids.ok()) return ids.status();
  auto buffers = internal::CurrentRuntime()->Get(*ids, timeout_ms);
  if (!buffers.ok()) return buffers.status();
  std::vector<T> values;
  values.reserve(refs.size());
  for (size_t i = 0; i < refs.size(); ++i) {
    T value{};  // not values[i]: std::vector<bool> has no bool& to write to
    absl::Status s = internal::DeserializeInto((*buffers)[i]->data(), (*buffers)[i]->size(), &value,
                                               "object " + (*ids)[i].Hex());
    if (!s.ok()) return s;
    values.push_back(std::move(value));
  }
  return values;
}

template <typename T>
absl::StatusOr<T> Get(const ObjectRef<T>& ref, int64_t timeout_ms = -1) {
  auto values = Get(std::vector<ObjectRef<T>>{ref}, timeout_ms);
  if (!values.ok()) return values.status();
  return std::move((*values)[0]);
}

// A read-only view of an array of numbers held by an object. A large array
// is read in place from the node's shared memory, without a copy; the view
// keeps that memory mapped while it lives. Thread-safe to read.
template <typename T>
class ArrayView {
 public:
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const T& operator[](size_t i) const { return data_[i]; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }
  // True when the values are read in place from shared memory.
  bool in_shared_memory() const { return owned_.empty() && buffer_ && buffer_->in_shared_memory(); }

 private:
  template <typename U>
  friend absl::StatusOr<ArrayView<U>> GetArray(const ObjectRef<std::vector<U>>&, int64_t);
  std::shared_ptr<internal::Buffer> buffer_;
  std::vector<T> owned_;  // when the bytes could not be used in place
  const T* data_ = nullptr;
  size_t size_ = 0;
};

// The values of an array object without copying them when they are in this
// node's shared memory (see ArrayView). T: int16/32/64, uint16/32/64, float,
// double.
template <typename T>
absl::StatusOr<ArrayView<T>> GetArray(const ObjectRef<std::vector<T>>& ref,
                                      int64_t timeout_ms = -1) {
  internal::Runtime* rt = internal::CurrentRuntime();
  if (rt == nullptr) return internal::NotInitializedError();
  if (ref.IsNil()) return internal::NilRefError();
  auto buffers = rt->Get({ref.ID()}, timeout_ms);
  if (!buffers.ok()) return buffers.status();
  ArrayView<T> view;
  view.buffer_ = std::move((*buffers)[0]);
  const char* bytes = view.buffer_->data();
  const size_t size = view.buffer_->size();
  const char* payload = nullptr;
  size_t payload_bytes = 0;
  bool packed = size >= internal::kPackedHeaderBytes &&
                static_cast<unsigned char>(bytes[0]) == 0xc9 &&
                internal::PackedPayload(static_cast<int8_t>(bytes[5]), bytes + 6, size - 6,
                                        internal::PackedVectorCode<T>::kCode, sizeof(T), &payload,
                                        &payload_bytes);
  if (packed && reinterpret_cast<uintptr_t>(payload) % alignof(T) == 0) {
    view.data_ = reinterpret_cast<const T*>(payload);
    view.size_ = payload_bytes / sizeof(T);
    return view;
  }
  absl::Status s = internal::DeserializeInto(bytes, size, &view.owned_, "object " + ref.ID().Hex());
  if (!s.ok()) return s;
  view.data_ = view.owned_.data();
  view.size_ = view.owned_.size();
  return view;
}

struct WaitResult {
  std::vector<ObjectRefBase> ready;
  std::vector<ObjectRefBase> unready;
};

// Waits until `num_ready` of `refs` are ready (a value or an error) or
// `timeout_ms` passed (< 0: forever), and splits them, keeping their order.
absl::StatusOr<WaitResult> Wait(const std::vector<ObjectRefBase>& refs, int num_ready,
                                int64_t timeout_ms = -1);
template <typename T>
absl::StatusOr<WaitResult> Wait(const std::vector<ObjectRef<T>>& refs, int num_ready,
                                int64_t timeout_ms = -1) {
  return Wait(std::vector<ObjectRefBase>(refs.begin(), refs.end()), num_ready, timeout_ms);
}

struct NodeInfo {
  NodeId id;
  std::string address;  // the node manager, host:port
  bool alive = false;
  bool is_head = false;
  std::map<std::string, double> resources_total;
  std::map<std::string, double> resources_available;
  int64_t object_store_used = 0;  // bytes
  int64_t object_store_capacity = 0;
  int64_t num_objects = 0;
  int64_t num_workers = 0;
  int64_t tasks_executed = 0;  // counted as leases are returned
  int64_t leases_granted = 0;
  int64_t objects_pulled = 0;
  int64_t bytes_pulled = 0;
};

// Every node the cluster knows, with fresh figures from each live one
// (one call to each); `ask_each_node` false: the GCS's view alone, with
// figures as last reported (one call, for watching membership).
absl::StatusOr<std::vector<NodeInfo>> Nodes(bool ask_each_node = true);

struct RuntimeContext {
  JobId job;
  NodeId node;
  WorkerId worker;
  TaskId task;  // the task running now (the driver's root task in a driver)
  bool is_driver = false;
  std::string gcs_address;
  ActorId actor;           // the actor this worker hosts, if any
  int actor_restarts = 0;  // how many times that actor was started again
  bool WasRestarted() const { return actor_restarts > 0; }
  // The node's GPUs leased to this task or actor (resources {"GPU": n});
  // CUDA_VISIBLE_DEVICES lists the same ones, so CUDA numbers them 0..n-1.
  std::vector<int> gpu_ids;
};
// Where the calling code runs. Empty ids before Init().
RuntimeContext GetRuntimeContext();

}  // namespace lumen
