// LeaseManager: grants worker leases by resources. A request is placed by
// the scheduler (scheduling/policy.h): here with room now -> the resources
// are taken, the job's code resolved and a worker popped; here without room
// -> queued; elsewhere -> spillback to that node. A lease ends when its
// holder returns the worker, the worker dies, its holder dies or its job
// ends. A worker blocked in Get lends its CPUs back meanwhile.
// Runs on the node manager loop.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/bounded_set.h"
#include "node/code_cache.h"
#include "node/worker_pool.h"
#include "proto/node.pb.h"
#include "rpc/node_manager_service.h"
#include "scheduling/cluster_view.h"
#include "scheduling/placement_group.h"
#include "scheduling/policy.h"

namespace lumen::node {

struct LeaseStats {
  int64_t leases_granted = 0;
  int64_t leases_spilled = 0;
  int64_t tasks_executed = 0;
};

class LeaseManager {
 public:
  LeaseManager(NodeId self, ResourceSet total, ClusterView* view, WorkerPool* pool,
               CodeResolver* code, std::string host, std::function<void()> on_resources_changed);

  void HandleRequestWorkerLease(const proto::RequestWorkerLeaseRequest& request,
                                proto::RequestWorkerLeaseReply* reply, rpc::SendReply send);
  void HandleReturnWorker(const proto::ReturnWorkerRequest& request,
                          proto::ReturnWorkerReply* reply, rpc::SendReply send);
  void HandleWorkerBlocked(const proto::WorkerBlockedRequest& request,
                           proto::WorkerBlockedReply* reply, rpc::SendReply send);

  // The worker process exited: its lease ends, and so do the leases and
  // requests it made.
  void OnWorkerExit(const Worker* worker, const std::string& how);
  // A node died: leases and requests made from it end.
  void OnNodeDead(const NodeId& node);
  // Ends the lease of `worker` (or just stops it when not leased).
  void KillWorker(const WorkerId& worker, const std::string& why);

  // Placement group bundles on this node (see scheduling/placement_group.h).
  // Prepare takes the bundles' resources, all or none (bundles held already
  // count as prepared); commit turns the prepared ones into the group's
  // resources; return gives back the bundles `indices` (empty: all).
  bool PrepareBundles(const PlacementGroupId& group,
                      const std::vector<std::pair<int, ResourceSet>>& bundles);
  void CommitBundles(const PlacementGroupId& group);
  void ReturnBundles(const PlacementGroupId& group, const std::vector<int>& indices);
  // The group is gone: leases using it end, requests for it fail now and later.
  void OnGroupRemoved(const PlacementGroupId& group);
  // The job's leases and requests end, and later requests for it fail.
  void OnJobFinished(const JobId& job);
  bool IsFinished(const JobId& job) const { return finished_jobs_.count(job) > 0; }
  // Other nodes' resources changed: queued requests may go there now.
  void OnClusterChanged() { DispatchQueue(); }
  void Shutdown();

  const ResourceSet& total() const { return total_; }
  // Grows with every change of total or available resources.
  uint64_t resources_version() const { return resources_version_; }
  ResourceSet Available() const;
  size_t NumLeases() const { return leases_.size(); }
  size_t NumQueued() const { return queue_.size(); }
  const LeaseStats& stats() const { return stats_; }

 private:
  // Which of the node's GPUs a lease holds, and how much of each.
  using GpuShares = std::vector<std::pair<int, double>>;
  struct Pending {
    proto::RequestWorkerLeaseRequest request;
    ResourceSet demand;
    PlacementRequest placement;
    proto::RequestWorkerLeaseReply* reply;
    rpc::SendReply send;
    GpuShares gpus;  // taken at grant
  };
  struct Lease {
    LeaseId id;
    Worker* worker = nullptr;
    JobId job;
    ResourceSet held;
    ResourceSet lent;  // CPUs lent back while the worker is blocked
    int blocked = 0;   // threads of the worker blocked in Get/Wait
    std::string caller_worker_id;
    std::string caller_node_id;
    bool detached_actor = false;  // outlives its job
    GpuShares gpus;
  };

  // Places the request and answers it, grants it or queues it. Returns true
  // when it is done with (answered or being granted).
  bool Decide(std::unique_ptr<Pending>& p, bool queued);
  void Grant(std::unique_ptr<Pending> p);
  void DispatchQueue();
  bool FitsNow(const ResourceSet& demand) const;
  void Take(const ResourceSet& r);
  void Release(const ResourceSet& r);
  // Picks GPUs for `amount` (whole GPUs for 1 or more, the fullest GPU with
  // room for a fraction) and gives them back.
  GpuShares TakeGpus(double amount);
  void ReleaseGpus(const GpuShares& gpus);
  void ResourcesTotalChanged();
  void ResourcesChanged();  // bumps the version, tells the node manager
  void EndLease(std::map<LeaseId, Lease>::iterator it, bool kill_worker, const std::string& why);
  void Fail(Pending* p, absl::StatusCode code, const std::string& message);
  // Why a request may no longer be granted ("" when it may).
  std::string WhyGone(const proto::LeaseSpec& spec) const;
  void DropQueued(const std::function<bool(const Pending&)>& doomed, const std::string& why);

  NodeId self_;
  ResourceSet total_;
  ResourceSet allocated_;
  std::vector<double> gpu_free_;  // by GPU index: the share not leased
  ClusterView* view_;
  WorkerPool* pool_;
  CodeResolver* code_;
  std::string host_;
  std::function<void()> on_resources_changed_;
  Scheduler scheduler_;
  std::deque<std::unique_ptr<Pending>> queue_;
  std::map<LeaseId, Lease> leases_;
  std::set<JobId> finished_jobs_;
  std::set<std::string> dead_callers_;  // worker ids
  std::set<std::string> dead_nodes_;    // node ids
  struct Bundle {
    ResourceSet resources;  // what it took from the node
    bool committed = false;
  };
  std::map<PlacementGroupId, std::map<int, Bundle>> groups_;
  uint64_t resources_version_ = 0;  // by bundle index
  BoundedSet<PlacementGroupId> removed_groups_{100'000};
  LeaseStats stats_;
  bool shutting_down_ = false;

  // Requests by the id their caller named: one sent again gets the first
  // one's answer (waiting for it when it is still pending). The last
  // kRememberedAnswers answers are kept; a retry comes within seconds.
  struct Answer {
    bool answered = false;
    absl::Status status;
    proto::RequestWorkerLeaseReply reply;
    std::vector<std::pair<proto::RequestWorkerLeaseReply*, rpc::SendReply>> waiting;
  };
  static constexpr size_t kRememberedAnswers = 20'000;
  void Remember(const std::string& request_id, const proto::RequestWorkerLeaseReply& reply,
                const absl::Status& status);
  std::unordered_map<std::string, Answer> answers_;
  std::deque<std::string> answered_order_;
};

// The placement request for a lease spec.
absl::StatusOr<PlacementRequest> ToPlacement(const proto::LeaseSpec& spec);

}  // namespace lumen::node
