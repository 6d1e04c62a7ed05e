// TaskSubmitter: runs normal tasks. For each task it waits for the
// arguments that are objects (small values are then carried inline), then
// queues it by scheduling key (resources + strategy). For each key it asks
// the local node manager for worker leases, follows spillbacks to other
// nodes, pushes queued tasks straight to leased workers one at a time and
// returns a lease once the key's queue is empty. Data decides where work
// goes when it can: a lease is asked for at the node that holds most of the
// next task's stored arguments, and an idle leased worker takes a queued task
// whose data is on its node first. A failed push means the
// worker died: the task runs again while retries last.
// Runs on the core worker loop.
#pragma once

#include <deque>
#include <map>
#include <string>

#include "common/event_loop.h"
#include "proto/node.pb.h"
#include "rpc/client_pool.h"
#include "rpc/core_worker_service.h"
#include "rpc/node_manager_service.h"
#include "worker/dependency_resolver.h"
#include "worker/task_manager.h"

namespace lumen::worker {

struct SubmitterOptions {
  int max_pending_leases_per_key = 10;
  int64_t node_manager_retry_for_ms = 30'000;
  // This node's manager is gone: how long queued tasks wait before failing
  // with that, in case the whole cluster went (the core worker then fails
  // them with that reason, which says more).
  int64_t local_loss_hold_ms = 5'000;
};

class TaskSubmitter {
 public:
  TaskSubmitter(EventLoop* loop, std::string local_node_manager, proto::Address self,
                DependencyResolver* resolver, TaskManager* tasks,
                rpc::ClientPool<rpc::NodeManagerClient>* node_managers,
                rpc::ClientPool<rpc::CoreWorkerClient>* workers, SubmitterOptions options = {})
      : loop_(loop),
        local_node_manager_(std::move(local_node_manager)),
        self_(std::move(self)),
        resolver_(resolver),
        tasks_(tasks),
        node_managers_(node_managers),
        workers_(workers),
        options_(options) {}

  // Takes a task already added to the TaskManager.
  void Submit(const TaskId& id);
  // Returns every lease (the process is stopping).
  void Shutdown();

 private:
  struct LeasedWorker {
    LeaseId lease;
    proto::Address address;
    std::string node_manager;
    bool busy = false;
    int64_t tasks_done = 0;
    std::vector<int32_t> gpu_ids;  // the lease's GPUs, passed on with each task
  };
  struct KeyState {
    proto::LeaseSpec lease_spec;
    std::deque<TaskId> queue;
    int pending_leases = 0;
    std::map<LeaseId, LeasedWorker> workers;
  };

  void Enqueue(const TaskId& id);
  void Pump(const std::string& key);
  // Takes from the queue the task to push to an idle worker of
  // `node_manager`'s node: one whose data is there, else the oldest.
  TaskId TakeTaskFor(KeyState& k, const std::string& node_manager);
  // The node manager to ask first: where most of the task's stored arguments
  // are (default strategy only), else the local one.
  std::string PreferredNodeManager(const TaskId& id, const proto::LeaseSpec& spec) const;
  void RequestLease(const std::string& key, const std::string& node_manager, bool grant_or_reject,
                    int attempt);
  void OnLeaseReply(const std::string& key, const std::string& node_manager, bool spilled,
                    int attempt, const absl::Status& status,
                    const proto::RequestWorkerLeaseReply& reply);
  void Push(const std::string& key, const LeaseId& lease, const TaskId& task);
  void OnPushReply(const std::string& key, const LeaseId& lease, const TaskId& task,
                   const absl::Status& status, const proto::PushTaskReply& reply);
  void ReturnLease(KeyState& k, const LeaseId& lease, bool worker_failed);
  void FailQueued(KeyState& k, const absl::Status& status);

  EventLoop* loop_;
  std::string local_node_manager_;
  proto::Address self_;
  DependencyResolver* resolver_;
  TaskManager* tasks_;
  rpc::ClientPool<rpc::NodeManagerClient>* node_managers_;
  rpc::ClientPool<rpc::CoreWorkerClient>* workers_;
  SubmitterOptions options_;
  std::map<std::string, KeyState> keys_;
  bool shutting_down_ = false;
};

// Tasks with the same key can share a leased worker.
std::string SchedulingKey(const proto::TaskSpec& spec);

}  // namespace lumen::worker
