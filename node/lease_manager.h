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
#include <string>

#include "node/code_cache.h"
#include "node/worker_pool.h"
#include "proto/node.pb.h"
#include "rpc/node_manager_service.h"
#include "scheduling/cluster_view.h"
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

  // The worker process exited: its lease ends, and so do leases it held.
  void OnWorkerExit(const Worker* worker, const std::string& how);
  void OnJobFinished(const JobId& job);
  // Other nodes' resources changed: queued requests may go there now.
  void OnClusterChanged() { DispatchQueue(); }
  void Shutdown();

  const ResourceSet& total() const { return total_; }
  ResourceSet Available() const;
  size_t NumLeases() const { return leases_.size(); }
  size_t NumQueued() const { return queue_.size(); }
  const LeaseStats& stats() const { return stats_; }

 private:
  struct Pending {
    proto::RequestWorkerLeaseRequest request;
    ResourceSet demand;
    PlacementRequest placement;
    proto::RequestWorkerLeaseReply* reply;
    rpc::SendReply send;
  };
  struct Lease {
    LeaseId id;
    Worker* worker = nullptr;
    JobId job;
    ResourceSet held;
    ResourceSet lent;  // CPUs lent back while the worker is blocked
    std::string caller_worker_id;
  };

  // Places the request and answers it, grants it or queues it. Returns true
  // when it is done with (answered or being granted).
  bool Decide(std::unique_ptr<Pending>& p, bool queued);
  void Grant(std::unique_ptr<Pending> p);
  void DispatchQueue();
  bool FitsNow(const ResourceSet& demand) const;
  void Take(const ResourceSet& r);
  void Release(const ResourceSet& r);
  void EndLease(std::map<LeaseId, Lease>::iterator it, bool kill_worker, const std::string& why);
  void Fail(Pending* p, absl::StatusCode code, const std::string& message);

  NodeId self_;
  ResourceSet total_;
  ResourceSet allocated_;
  ClusterView* view_;
  WorkerPool* pool_;
  CodeResolver* code_;
  std::string host_;
  std::function<void()> on_resources_changed_;
  Scheduler scheduler_;
  std::deque<std::unique_ptr<Pending>> queue_;
  std::map<LeaseId, Lease> leases_;
  LeaseStats stats_;
  bool shutting_down_ = false;
};

// The placement request for a lease spec.
absl::StatusOr<PlacementRequest> ToPlacement(const proto::LeaseSpec& spec);

}  // namespace lumen::node
