// The seam between the API templates in include/lumen and liblumen: an
// abstract runtime that the driver or worker process provides once Init()
// ran. Not for direct use.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lumen/id.h"
#include "lumen/placement_group.h"

namespace lumen {

// Where a task may run (see lumen::Task(...).SetSchedulingStrategy).
struct SchedulingStrategy {
  enum class Kind { kDefault, kSpread, kNodeAffinity };
  Kind kind = Kind::kDefault;
  NodeId node;
  bool soft = false;

  // Local node first while it has room, then another node that fits.
  static SchedulingStrategy Default() { return {}; }
  // Spread tasks over the nodes that fit.
  static SchedulingStrategy Spread() { return {Kind::kSpread, NodeId(), false}; }
  // Run on `node`; with `soft`, anywhere when that node cannot.
  static SchedulingStrategy NodeAffinity(const NodeId& node, bool soft = false) {
    return {Kind::kNodeAffinity, node, soft};
  }
};

namespace internal {

// One argument of a task: a serialized value, or an object to resolve first.
struct TaskArg {
  bool is_ref = false;
  std::string value;
  ObjectId ref;
};

struct TaskOptions {
  std::string function_name;
  std::string signature;
  std::map<std::string, double> resources;  // empty: {CPU: 1}
  int max_retries = -1;                     // -1: the default (3)
  SchedulingStrategy strategy;
  PlacementGroupId placement_group;  // nil: none
  int bundle_index = -1;             // -1: any bundle of the group
};

struct ActorCreateOptions {
  std::string factory_name;
  std::string signature;
  std::string class_type;  // mangled type of the actor's class
  std::string name;        // empty: anonymous
  std::string ns;
  bool detached = false;
  int max_restarts = 0;  // -1: without limit
  int max_task_retries = 0;
  int max_concurrency = 1;
  std::map<std::string, double> resources;  // held for the actor's life; empty: none
  PlacementGroupId placement_group;
  int bundle_index = -1;
  SchedulingStrategy strategy;
};

// An actor as the GCS knows it (for runtime components that supervise
// actors, such as the serve controller).
struct ActorStateInfo {
  enum State { kPending, kAlive, kRestarting, kDead };
  ActorId id;
  State state = kPending;
  std::string name;
  std::string ns;
  std::string death_cause;     // when kDead
  std::string pending_reason;  // when kPending/kRestarting: what it waits for, if known
  int num_restarts = 0;
  NodeId node;  // when kAlive
  bool detached = false;
};

// Bytes of a value; backed by memory or a shared-memory mapping.
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual const char* data() const = 0;
  virtual size_t size() const = 0;
  // True when the bytes are a mapping of the node's shared-memory store.
  virtual bool in_shared_memory() const { return false; }
};

class Runtime {
 public:
  virtual ~Runtime() = default;
  // Each returns an id that already holds one local reference. Failures
  // are stored in the object and surface at Get.
  virtual ObjectId Submit(const TaskOptions& options, std::vector<TaskArg> args) = 0;
  // Stores an object of `size` bytes that `write` fills in place (in the
  // node's shared memory when large, so the value is copied once).
  virtual ObjectId Put(size_t size, const std::function<void(char*)>& write) = 0;
  // timeout_ms < 0: wait forever.
  virtual absl::StatusOr<std::vector<std::shared_ptr<Buffer>>> Get(const std::vector<ObjectId>& ids,
                                                                   int64_t timeout_ms) = 0;
  virtual absl::StatusOr<std::vector<bool>> Wait(const std::vector<ObjectId>& ids, int num_ready,
                                                 int64_t timeout_ms) = 0;
  virtual void AddLocalRef(const ObjectId& id) = 0;
  virtual void RemoveLocalRef(const ObjectId& id) = 0;
  // Calls `done` once with the object's value or error when it is ready:
  // on the thread that made it ready (keep `done` short), or on a thread of
  // its own for a value in shared memory. The caller keeps a reference
  // until then.
  using ReadyFn = std::function<void(absl::StatusOr<std::shared_ptr<Buffer>>)>;
  virtual void OnReady(const ObjectId& id, ReadyFn done) = 0;

  // The cluster's key-value store (in the GCS), for runtime components.
  virtual absl::StatusOr<std::optional<std::string>> KvGet(const std::string& ns,
                                                           const std::string& key) = 0;
  virtual absl::Status KvPut(const std::string& ns, const std::string& key,
                             const std::string& value) = 0;
  // The same, without blocking: `done` runs once, on a thread of the
  // runtime (keep it short; post to your own loop).
  using KvGetDone = std::function<void(absl::StatusOr<std::optional<std::string>>)>;
  using StatusDone = std::function<void(absl::Status)>;
  virtual void KvGetAsync(const std::string& ns, const std::string& key, KvGetDone done) = 0;
  virtual void KvPutAsync(const std::string& ns, const std::string& key, const std::string& value,
                          StatusDone done) = 0;
  virtual void KvDelAsync(const std::string& ns, const std::string& key, StatusDone done) = 0;
  virtual absl::Status KvDel(const std::string& ns, const std::string& key) = 0;
  virtual absl::StatusOr<std::vector<std::string>> KvKeys(const std::string& ns,
                                                          const std::string& prefix) = 0;
  // For runtime components that open their own connections (the serving
  // data plane): the cluster token peers must present, and the host this
  // process listens on.
  virtual std::string ClusterToken() const = 0;
  virtual std::string ListenHost() const = 0;

  // Actors. Creation returns at once; a failure (a taken name, resources
  // no node has, a throwing factory) makes the actor dead with that cause,
  // which Ready() and every call report.
  virtual ActorId CreateActor(const ActorCreateOptions& options, std::vector<TaskArg> args) = 0;
  virtual ObjectId SubmitActorTask(const ActorId& actor, const TaskOptions& options,
                                   std::vector<TaskArg> args) = 0;
  virtual absl::StatusOr<ActorId> GetNamedActor(const std::string& name, const std::string& ns,
                                                const std::string& class_type) = 0;
  virtual absl::Status KillActor(const ActorId& actor, bool no_restart) = 0;
  virtual absl::Status WaitActorReady(const ActorId& actor, int64_t timeout_ms) = 0;
  // Without blocking; `done` runs once on a thread of the runtime.
  using ActorsDone = std::function<void(absl::StatusOr<std::vector<ActorStateInfo>>)>;
  // Named actors in `ns` whose name starts with `name_prefix`.
  virtual void ListActorsAsync(const std::string& ns, const std::string& name_prefix,
                               ActorsDone done) = 0;
  virtual void KillActorAsync(const ActorId& actor, bool no_restart, StatusDone done) = 0;

  // Placement groups (lumen/placement_group.h).
  virtual absl::StatusOr<PlacementGroupId> CreatePlacementGroup(
      const PlacementGroupOptions& options) = 0;
  virtual absl::Status RemovePlacementGroup(const PlacementGroupId& group) = 0;
  virtual absl::Status WaitPlacementGroup(const PlacementGroupId& group, int64_t timeout_ms) = 0;
  // By id, or by name when `group` is nil.
  virtual absl::StatusOr<PlacementGroupInfo> GetPlacementGroup(const PlacementGroupId& group,
                                                               const std::string& name) = 0;
};

// The process's runtime, or nullptr before Init() and after Shutdown().
Runtime* CurrentRuntime();

}  // namespace internal
}  // namespace lumen
