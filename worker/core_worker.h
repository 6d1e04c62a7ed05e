// CoreWorker: the runtime inside every driver and worker process. It owns
// what the process creates (reference counts, small values, where large
// ones live), submits tasks (task_submitter.h), executes them in workers
// (task_executor.h) and serves CoreWorkerService. Its logic runs on one loop
// ("core_worker"); the Runtime methods are called from user threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/bounded_set.h"
#include "common/event_loop.h"
#include "gcs/subscriber.h"
#include "lumen/api.h"
#include "lumen/internal/runtime.h"
#include "proto/worker.pb.h"
#include "rpc/client_pool.h"
#include "rpc/core_worker_service.h"
#include "rpc/gcs_client.h"
#include "rpc/node_manager_service.h"
#include "rpc/server.h"
#include "worker/actor_submitter.h"
#include "worker/code_package.h"
#include "worker/dependency_resolver.h"
#include "worker/memory_store.h"
#include "worker/object_io.h"
#include "worker/reference_counter.h"
#include "worker/task_events.h"
#include "worker/task_executor.h"
#include "worker/task_manager.h"
#include "worker/task_submitter.h"

namespace lumen::worker {

struct CoreWorkerOptions {
  bool is_driver = true;
  std::string gcs_address;
  std::string token;
  std::string node_manager_address;  // the node manager on this machine
  std::string host = "127.0.0.1";    // to listen on
  // Workers get these from their node manager; drivers learn them at start.
  JobId job_id;
  WorkerId worker_id = WorkerId::FromRandom();
  NodeId node_id;
  std::string store_prefix;
};

class CoreWorker : public internal::Runtime, public rpc::CoreWorkerHandler {
 public:
  explicit CoreWorker(CoreWorkerOptions options);
  ~CoreWorker() override;

  // Driver: uploads the code package, adds the job to the GCS and registers
  // with the local node manager.
  absl::Status StartDriver(const CodePackage& code, const std::string& entrypoint);
  // Worker: registers with its node manager; a non-empty `startup_error`
  // (its code did not load) is reported instead.
  absl::Status StartWorker(const std::string& startup_error);
  // Worker: runs pushed tasks on the calling thread until Shutdown().
  void RunTaskLoop();
  // Ends the job (driver), stops serving; idempotent.
  void Shutdown();
  // Sends the task events not sent yet, waiting up to `timeout_ms` (a
  // worker about to exit: its node manager stops it with SIGTERM). Any thread.
  void FlushTaskEvents(int64_t timeout_ms);

  ObjectId Submit(const internal::TaskOptions& options,
                  std::vector<internal::TaskArg> args) override;
  ObjectId Put(size_t size, const std::function<void(char*)>& write) override;
  absl::StatusOr<std::vector<std::shared_ptr<internal::Buffer>>> Get(
      const std::vector<ObjectId>& ids, int64_t timeout_ms) override;
  absl::StatusOr<std::vector<bool>> Wait(const std::vector<ObjectId>& ids, int num_ready,
                                         int64_t timeout_ms) override;
  void AddLocalRef(const ObjectId& id) override { refs_.AddLocalRef(id); }
  void RemoveLocalRef(const ObjectId& id) override { refs_.RemoveLocalRef(id); }

  void OnReady(const ObjectId& id, ReadyFn done) override;
  absl::StatusOr<std::optional<std::string>> KvGet(const std::string& ns,
                                                   const std::string& key) override;
  absl::Status KvPut(const std::string& ns, const std::string& key,
                     const std::string& value) override;
  void KvGetAsync(const std::string& ns, const std::string& key, KvGetDone done) override;
  void KvPutAsync(const std::string& ns, const std::string& key, const std::string& value,
                  StatusDone done) override;
  void KvDelAsync(const std::string& ns, const std::string& key, StatusDone done) override;
  absl::Status KvDel(const std::string& ns, const std::string& key) override;
  absl::StatusOr<std::vector<std::string>> KvKeys(const std::string& ns,
                                                  const std::string& prefix) override;
  std::string ClusterToken() const override { return options_.token; }
  std::string ListenHost() const override {
    return options_.host.empty() || options_.host == "0.0.0.0" ? "127.0.0.1" : options_.host;
  }

  // Actors (core_worker_actors.cc).
  ActorId CreateActor(const internal::ActorCreateOptions& options,
                      std::vector<internal::TaskArg> args) override;
  ObjectId SubmitActorTask(const ActorId& actor, const internal::TaskOptions& options,
                           std::vector<internal::TaskArg> args) override;
  absl::StatusOr<ActorId> GetNamedActor(const std::string& name, const std::string& ns,
                                        const std::string& class_type) override;
  absl::Status KillActor(const ActorId& actor, bool no_restart) override;
  absl::Status WaitActorReady(const ActorId& actor, int64_t timeout_ms) override;
  void ListActorsAsync(const std::string& ns, const std::string& name_prefix,
                       ActorsDone done) override;
  void KillActorAsync(const ActorId& actor, bool no_restart, StatusDone done) override;
  absl::StatusOr<PlacementGroupId> CreatePlacementGroup(
      const PlacementGroupOptions& options) override;
  absl::Status RemovePlacementGroup(const PlacementGroupId& group) override;
  absl::Status WaitPlacementGroup(const PlacementGroupId& group, int64_t timeout_ms) override;
  absl::StatusOr<PlacementGroupInfo> GetPlacementGroup(const PlacementGroupId& group,
                                                       const std::string& name) override;

  LUMEN_HANDLER_IMPL(PushTask);
  LUMEN_HANDLER_IMPL(AddObjectLocation);
  LUMEN_HANDLER_IMPL(PrintWorkerOutput);
  LUMEN_HANDLER_IMPL(PushActorTasks);
  LUMEN_HANDLER_IMPL(DrainActor);

  RuntimeContext Context() const;
  rpc::GcsClient* gcs() { return gcs_.get(); }
  const std::string& token() const { return options_.token; }
  size_t NumOwnedObjects() const { return refs_.NumObjects(); }

 private:
  absl::Status StartCommon();
  void FinishSetup();
  void OnFree(const ObjectId& id, const std::vector<ObjectLocation>& locations);
  // A node died: objects whose only copy it held are made again from their
  // lineage or fail with an object-lost error (on the loop).
  void OnNodeDead(const NodeId& node, const std::string& why);
  // The cluster is gone (its GCS lost the state): pending work fails with
  // `why` and so does later work (on the loop).
  void OnClusterLost(const std::string& why);
  // Sends the process registry to the node manager (every 2 s).
  void ReportMetrics();
  absl::Status ClusterLost() const;
  // Makes lost object `id` again, or stores the error that says why it cannot
  // be (on the loop).
  void RebuildLost(const ObjectId& id, const std::string& why);
  // A Get could not fetch owned object `id` from `node`: rebuilds it if it
  // still lives there only. Returns whether it is being made again.
  bool RebuildAfterFailedFetch(const ObjectId& id, const NodeId& node, const absl::Status& error);
  void FreeCopy(const ObjectId& id, const ObjectLocation& where);
  void FlushFrees();
  ObjectId FailedObject(const ObjectId& id, const absl::Status& error);
  absl::StatusOr<proto::TaskSpec> BuildSpec(proto::TaskType type, const TaskId& task,
                                            const internal::TaskOptions& o,
                                            std::vector<internal::TaskArg> args,
                                            std::vector<ObjectId>* ref_args);
  // Makes the task's return object and submits the task (an actor call when
  // `actor` is set), or fails the object with what is wrong.
  ObjectId BuildAndSubmit(proto::TaskType type, const TaskId& task, const ActorId& actor,
                          const internal::TaskOptions& options,
                          std::vector<internal::TaskArg> args);
  // Adds a built task (and the references it holds) and hands it to the loop.
  ObjectId SubmitBuilt(proto::TaskSpec spec, const ObjectId& result, std::vector<ObjectId> ref_args,
                       bool actor_task);
  // The error for a function that cannot be called remotely, or OK.
  absl::Status CheckCallable(const std::string& function_name) const;
  // What the calling thread runs: tasks on a worker's executor threads have
  // a context of their own; every other thread shares the process's.
  void SetCurrentTask(const TaskId& task);
  TaskId CurrentTask() const;
  uint64_t NextSubmitIndex();
  uint64_t NextPutIndex();
  uint64_t NextActorIndex();
  void OnActorCreated(const ActorId& actor, int restarts);
  void NotifyBlocked(bool blocked);
  // Waits in the memory store; a worker running a task lends its CPUs to
  // its node meanwhile (nested tasks cannot deadlock a full node).
  bool WaitInStore(const std::vector<ObjectId>& ids, size_t num_ready, int64_t timeout_ms,
                   std::vector<bool>* ready);

  // Counts API calls in progress, so Shutdown() can let them finish.
  class ApiCall {
   public:
    explicit ApiCall(CoreWorker* w) : w_(w) { w_->active_calls_++; }
    ~ApiCall();
    bool stopped() const { return w_->stopped_; }

   private:
    CoreWorker* w_;
  };

  CoreWorkerOptions options_;
  proto::Address self_;
  EventLoop loop_{"core_worker"};
  rpc::GrpcServer server_;
  std::unique_ptr<rpc::GcsClient> gcs_;
  rpc::ClientPool<rpc::NodeManagerClient> node_managers_;
  rpc::ClientPool<rpc::CoreWorkerClient> workers_;
  MemoryStore memory_store_;
  ReferenceCounter refs_;
  // Synchronous calls to the local node manager (callbacks inline, not on
  // the loop): pulls, seals, blocked notices.
  std::unique_ptr<rpc::NodeManagerClient> local_sync_;
  std::unique_ptr<ObjectIo> io_;
  std::unique_ptr<TaskManager> tasks_;
  std::unique_ptr<DependencyResolver> resolver_;
  std::unique_ptr<TaskSubmitter> submitter_;
  std::unique_ptr<ActorTaskSubmitter> actor_submitter_;
  std::unique_ptr<TaskExecutor> executor_;
  std::unique_ptr<gcs::GcsSubscriber> node_watch_;  // dead nodes, for lost objects
  TaskEventBuffer task_events_;                     // for the state API
  bool task_events_on_ = true;
  std::unique_ptr<PeriodicTimer> task_events_timer_;
  std::unique_ptr<PeriodicTimer> metrics_timer_;
  mutable std::mutex lost_mu_;
  absl::Status cluster_lost_;
  std::set<std::string> driver_only_;

  mutable std::mutex task_mu_;
  TaskId process_task_;  // the root of ids made outside any task (unique per process)
  std::atomic<uint64_t> submit_counter_{0};
  std::atomic<uint64_t> put_counter_{0};
  std::atomic<uint64_t> actor_counter_{0};
  ActorId actor_;  // the actor this worker hosts
  // The GPUs of the lease running here, as CUDA_VISIBLE_DEVICES also says.
  std::vector<int> gpu_ids_;
  std::optional<std::string> cuda_visible_before_;  // the process's own value
  void SetGpuIds(const google::protobuf::RepeatedField<int32_t>& ids);
  std::atomic<int> actor_restarts_{0};

  // Unnamed placement groups whose creation was sent without waiting for
  // the GCS's answer; Wait, Remove and Get wait for it first. Successes
  // leave the map when answered, failures stay to be reported. Groups the
  // answer says are created need no Wait call.
  absl::Status GroupCreation(const PlacementGroupId& group, int64_t timeout_ms);
  std::mutex groups_mu_;
  std::map<PlacementGroupId, std::shared_future<absl::Status>> creating_groups_;
  BoundedSet<PlacementGroupId> created_groups_{100'000};

  std::mutex free_mu_;
  std::map<std::string, std::vector<ObjectId>> pending_frees_;  // by node manager
  bool free_flush_posted_ = false;

  bool started_ = false;
  std::atomic<bool> stopped_{false};
  std::atomic<int> active_calls_{0};
  std::mutex api_mu_;
  std::condition_variable api_cv_;
};

// Makes `runtime` the one the API templates use in this process (workers;
// drivers get theirs from Init()).
void SetProcessRuntime(internal::Runtime* runtime);

}  // namespace lumen::worker
