// NodeManager: wiring, registration, reports and handlers; see node_manager.h.
#include "node/node_manager.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <regex>
#include <thread>

#include "common/file_util.h"
#include "common/ids.h"
#include "common/logging.h"
#include "node/shm.h"
#include "rpc/rpc.h"

namespace lumen::node {
namespace {

int64_t MemInfoBytes(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  std::string name;
  int64_t kb = 0;
  std::string unit;
  while (in >> name >> kb >> unit) {
    if (name == key + ":") return kb * 1024;
  }
  return 0;
}

int CountGpus() {
  int n = 0;
  std::error_code ec;
  static const std::regex kDevice("nvidia[0-9]+");
  for (const auto& e : std::filesystem::directory_iterator("/dev", ec)) {
    if (std::regex_match(e.path().filename().string(), kDevice)) n++;
  }
  return n;
}

std::string Hostname() {
  char buf[256] = {0};
  ::gethostname(buf, sizeof(buf) - 1);
  return buf;
}

}  // namespace

int64_t DefaultObjectStoreMemory() {
  int64_t want = MemInfoBytes("MemAvailable") * 3 / 10;
  struct statvfs vfs;
  if (::statvfs("/dev/shm", &vfs) == 0) {
    int64_t shm_free = static_cast<int64_t>(vfs.f_bavail) * static_cast<int64_t>(vfs.f_frsize);
    want = std::min(want, shm_free * 8 / 10);
  }
  return std::max<int64_t>(want, 64 << 20);
}

std::map<std::string, double> DetectResources(int64_t object_store_memory) {
  std::map<std::string, double> r;
  r["CPU"] = std::max(1u, std::thread::hardware_concurrency());
  if (int gpus = CountGpus(); gpus > 0) r["GPU"] = gpus;
  int64_t memory = MemInfoBytes("MemTotal") * 7 / 10 - object_store_memory;
  if (memory > 0) r["memory"] = static_cast<double>(memory);
  return r;
}

NodeManager::NodeManager(NodeManagerConfig config, ProcessLauncher* launcher, Clock* clock)
    : config_(std::move(config)),
      launcher_(launcher),
      clock_(clock),
      node_id_(NodeId::FromRandom()),
      server_("node_manager", rpc::ServerOptions{config_.host, config_.port, config_.token}),
      node_clients_(config_.token, &loop_),
      worker_clients_(config_.token, &loop_) {}

NodeManager::~NodeManager() { Stop(); }

absl::Status NodeManager::Start() {
  int removed = SweepStaleShmObjects();
  if (removed > 0) LUMEN_LOG_INFO("removed {} objects left by dead node managers", removed);
  int64_t store_memory =
      config_.object_store_memory > 0 ? config_.object_store_memory : DefaultObjectStoreMemory();
  auto total = ResourceSet::FromMap(config_.resources.empty() ? DetectResources(store_memory)
                                                              : config_.resources);
  if (!total.ok()) return total.status();
  total_ = *total;
  store_prefix_ = StorePrefix(::getpid(), node_id_);
  store_ = std::make_unique<LocalObjectStore>(store_prefix_, store_memory);
  gcs_ = std::make_unique<rpc::GcsClient>(config_.gcs_address, config_.token, &loop_);
  server_.AddService(rpc::MakeNodeManagerService(server_.MakeContext(&loop_), this));
  loop_.Start();
  started_ = true;
  LUMEN_RETURN_IF_ERROR(server_.Start());
  LUMEN_RETURN_IF_ERROR(StartMetrics());
  LUMEN_RETURN_IF_ERROR(Register());

  node_dir_ = session_dir_ + "/node-" + node_id_.Short();
  LUMEN_RETURN_IF_ERROR(MakeDirs(node_dir_ + "/logs", 0700));
  LUMEN_RETURN_IF_ERROR(MakeDirs(node_dir_ + "/code", 0700));
  std::string worker_path =
      config_.worker_path.empty() ? ExecutableDir() + "/lumen_worker" : config_.worker_path;
  int cpus = static_cast<int>(std::max(1.0, total_.Get("CPU")));
  WorkerPoolConfig pool{
      .worker_path = worker_path,
      .host = config_.host,
      .node_manager_address = rpc::JoinHostPort(config_.host, port()),
      .gcs_address = config_.gcs_address,
      .token = config_.token,
      .node_id = node_id_,
      .store_prefix = store_prefix_,
      .log_dir = node_dir_ + "/logs",
      .max_starting = std::max(2, cpus),
      .idle_timeout_ms = config_.idle_worker_timeout_ms,
      .soft_limit = cpus,
  };
  std::promise<void> ready;
  loop_.Post("node_manager.start", [&] {
    pool_ = std::make_unique<WorkerPool>(pool, launcher_, clock_);
    code_ = std::make_unique<CodeCache>(gcs_.get(), node_dir_ + "/code");
    leases_ = std::make_unique<LeaseManager>(node_id_, total_, &view_, pool_.get(), code_.get(),
                                             config_.host, [this] { ResourcesChanged(); });
    jobs_ = std::make_unique<JobSupervisor>(JobSupervisorOptions{.gcs_address = config_.gcs_address,
                                                                 .token = config_.token,
                                                                 .log_dir = node_dir_ + "/logs",
                                                                 .node_id = node_id_},
                                            gcs_.get(), code_.get(), launcher_, clock_);
    StartOnLoop();
    ready.set_value();
  });
  ready.get_future().wait();
  LUMEN_LOG_INFO("node manager ready node={} address={}:{} resources={} store={}MB",
                 node_id_.Short(), config_.host, port(), total_.ToString(),
                 store_->capacity() >> 20);
  return absl::OkStatus();
}

absl::Status NodeManager::Register() {
  proto::RegisterNodeRequest req;
  *req.mutable_node() = SelfInfo();
  auto reply = rpc::CallSync<proto::RegisterNodeReply>([&](auto cb) {
    gcs_->RegisterNode(req, cb,
                       {.timeout_ms = 5'000, .retry_for_ms = config_.gcs_connect_timeout_ms});
  });
  if (!reply.ok()) {
    std::string hint =
        absl::IsUnavailable(reply.status()) || absl::IsDeadlineExceeded(reply.status())
            ? ". Is the head running there (lumen start --head)?"
            : "";
    return absl::Status(reply.status().code(), "cannot join the cluster at " + config_.gcs_address +
                                                   ": " + std::string(reply.status().message()) +
                                                   hint);
  }
  heartbeat_period_ms_ = std::max<int64_t>(10, reply->heartbeat_period_ms());
  session_dir_ = config_.session_dir.empty() ? reply->session_dir() : config_.session_dir;
  if (session_dir_.empty()) session_dir_ = LumenHome() + "/session-adhoc";
  return absl::OkStatus();
}

void NodeManager::StartOnLoop() {
  view_.Upsert(NodeView{node_id_, {total_, total_}, rpc::JoinHostPort(config_.host, port()), true});
  pulls_ = std::make_unique<PullManager>(
      store_.get(), node_id_, SelfInfo().address(),
      [this](const NodeId& id) { return AddressOf(id); }, &node_clients_, &worker_clients_);
  subscriber_ = std::make_unique<gcs::GcsSubscriber>(
      gcs_.get(), &loop_,
      std::vector<proto::Channel>{proto::NODE_CHANGES, proto::RESOURCE_VIEW, proto::JOB_CHANGES,
                                  proto::PLACEMENT_GROUP_CHANGES},
      [this](const proto::PubMessage& m) { OnPubMessage(m); }, [this] { Resync(); });
  subscriber_->OnClusterLost([this](const std::string& why) {
    if (fatal_) fatal_(why);
  });
  subscriber_->Start();
  heartbeat_timer_ =
      loop_.RunEvery("node_manager.heartbeat", std::chrono::milliseconds(heartbeat_period_ms_),
                     [this] { ReportToGcs(); });
  driver_timer_ =
      loop_.RunEvery("node_manager.watch_drivers", std::chrono::milliseconds(500), [this] {
        jobs_->Tick();
        WatchDrivers();
        ForwardWorkerOutput();
      });
  log_timer_ = loop_.RunEvery("node_manager.rotate_logs", std::chrono::seconds(10),
                              [this] { RotateLogs(); });
  pool_timer_ = loop_.RunEvery("node_manager.worker_pool", std::chrono::milliseconds(100), [this] {
    pool_->Tick([this](Worker* w, const std::string& how) {
      LUMEN_LOG_INFO("worker exited worker={} pid={} job={} ({})", w->id.Short(), w->pid(),
                     w->job.Hex(), how);
      leases_->OnWorkerExit(w, how);
      if (!w->actor.IsNil()) {  // the GCS restarts it or declares it dead
        proto::ReportActorWorkerExitRequest req;
        req.set_actor_id(w->actor.Binary());
        req.set_worker_id(w->id.Binary());
        req.set_node_id(node_id_.Binary());
        req.set_cause(how);
        gcs_->ReportActorWorkerExit(req, [](absl::Status, proto::ReportActorWorkerExitReply) {},
                                    {.timeout_ms = 10'000, .retry_for_ms = 30'000});
      }
    });
  });
}

std::string NodeManager::AddressOf(const NodeId& id) const {
  const NodeView* n = view_.Find(id);
  return (n && n->alive) ? n->address : "";
}

proto::NodeInfo NodeManager::SelfInfo() const {
  proto::NodeInfo info;
  info.set_node_id(node_id_.Binary());
  info.mutable_address()->set_host(config_.host);
  info.mutable_address()->set_port(port());
  info.mutable_address()->set_node_id(node_id_.Binary());
  info.set_hostname(Hostname());
  info.set_is_head(config_.is_head);
  info.set_session_dir(session_dir_);
  info.set_metrics_port(metrics_port());
  // Placement group bundles change the total: the lease manager has it.
  const ResourceSet& total = leases_ ? leases_->total() : total_;
  for (const auto& [k, v] : total.ToMap()) (*info.mutable_resources_total())[k] = v;
  ResourceSet available = leases_ ? leases_->Available() : total_;
  for (const auto& [k, v] : available.ToMap()) (*info.mutable_resources_available())[k] = v;
  if (leases_) info.set_resources_version(leases_->resources_version());
  proto::NodeStats* s = info.mutable_stats();
  if (store_) {
    s->set_object_store_used(store_->used());
    s->set_object_store_capacity(store_->capacity());
    s->set_num_objects(store_->num_objects());
  }
  if (pool_) s->set_num_workers(static_cast<int64_t>(pool_->NumWorkers()));
  if (leases_) {
    s->set_num_leased_workers(static_cast<int64_t>(leases_->NumLeases()));
    s->set_tasks_executed(leases_->stats().tasks_executed);
    s->set_leases_granted(leases_->stats().leases_granted);
    s->set_leases_spilled(leases_->stats().leases_spilled);
  }
  if (pulls_) {
    s->set_objects_pulled(pulls_->objects_pulled());
    s->set_bytes_pulled(pulls_->bytes_pulled());
  }
  return info;
}

void NodeManager::OnPubMessage(const proto::PubMessage& m) {
  switch (m.channel()) {
    case proto::NODE_CHANGES:
    case proto::RESOURCE_VIEW:
      ApplyNode(m.node());
      break;
    case proto::JOB_CHANGES:
      if (m.job().finished()) OnJobFinished(JobId::FromBinary(m.job().job_id()));
      break;
    case proto::PLACEMENT_GROUP_CHANGES:
      if (m.group().state() == proto::PlacementGroupInfo::REMOVED) {
        leases_->OnGroupRemoved(PlacementGroupId::FromBinary(m.group().group_id()));
      }
      break;
    default:
      break;
  }
}

void NodeManager::Resync() {
  // Whatever was published while this node was not subscribed.
  gcs_->GetAllNodes(proto::GetAllNodesRequest(),
                    [this](absl::Status s, proto::GetAllNodesReply reply) {
                      if (!s.ok()) return;
                      for (const auto& n : reply.nodes()) ApplyNode(n);
                    });
  gcs_->GetAllJobs(proto::GetAllJobsRequest(),
                   [this](absl::Status s, proto::GetAllJobsReply reply) {
                     if (!s.ok()) return;
                     for (const auto& job : reply.jobs()) {
                       if (job.finished()) OnJobFinished(JobId::FromBinary(job.job_id()));
                     }
                   });
}

void NodeManager::ApplyNode(const proto::NodeInfo& info) {
  NodeId id = NodeId::FromBinary(info.node_id());
  if (id.IsNil()) return;
  if (id == node_id_) {
    if (info.state() == proto::NodeInfo::DEAD && fatal_) {
      fatal_("the GCS declared this node dead: " + info.death_reason());
    }
    const NodeView* self = view_.Find(node_id_);
    if (info.draining() && self != nullptr && !self->draining) {
      LUMEN_LOG_INFO("draining: taking no new work; leaving once idle");
      NodeView v = *self;
      v.draining = true;
      view_.Upsert(std::move(v));
      leases_->OnClusterChanged();  // what waits here goes elsewhere
      LeaveWhenIdle();
    }
    return;
  }
  std::string address = rpc::JoinHostPort(info.address().host(), info.address().port());
  if (info.state() == proto::NodeInfo::DEAD) {
    const NodeView* known = view_.Find(id);
    if (known && known->alive) {
      view_.MarkDead(id);
      pulls_->OnNodeDead(id);
      leases_->OnNodeDead(id);
      node_clients_.Remove(address);
    }
    return;
  }
  std::map<std::string, double> total(info.resources_total().begin(), info.resources_total().end());
  std::map<std::string, double> available(info.resources_available().begin(),
                                          info.resources_available().end());
  NodeView v;
  v.id = id;
  v.address = address;
  v.resources.total = ResourceSet::FromMap(total).value_or(ResourceSet());
  v.resources.available = ResourceSet::FromMap(available).value_or(ResourceSet());
  v.draining = info.draining();
  view_.Upsert(std::move(v));
  leases_->OnClusterChanged();
}

void NodeManager::LeaveWhenIdle() {
  if (stopped_) return;
  if (leases_->NumLeases() > 0) {
    loop_.PostAfter("node_manager.leave_when_idle", std::chrono::milliseconds(50),
                    [this] { LeaveWhenIdle(); });
    return;
  }
  LUMEN_LOG_INFO("drained: no work left, leaving the cluster");
  stop_reason_ = "drained";
  if (leave_) leave_("drained");
}

void NodeManager::OnJobFinished(const JobId& job) {
  if (leases_->IsFinished(job)) return;
  leases_->OnJobFinished(job);
  pool_->KillJobWorkers(job);
  code_->Forget(job);
  job_drivers_[job] = std::string();  // its detached actors' output goes nowhere
  std::vector<ObjectId> doomed;
  for (const ObjectId& id : store_->AllIds()) {
    if (JobIdOfTask(TaskIdOfObject(id)) == job) doomed.push_back(id);
  }
  store_->Free(doomed);
  pulls_->OnJobFinished(job);
  // Files no one sealed: a worker of the job killed while writing one.
  RemoveShmObjectsOfJob(store_prefix_, job);
  std::erase_if(drivers_, [&](const auto& e) { return e.second == job; });
}

void NodeManager::ResourcesChanged() {
  resources_dirty_ = true;
  if (report_scheduled_) return;
  report_scheduled_ = true;
  loop_.PostAfter("node_manager.report_soon", std::chrono::milliseconds(20), [this] {
    report_scheduled_ = false;
    ReportToGcs();
  });
}

void NodeManager::ReportToGcs() {
  proto::ReportNodeRequest req;
  proto::NodeInfo info = SelfInfo();
  req.set_node_id(node_id_.Binary());
  *req.mutable_resources_available() = info.resources_available();
  *req.mutable_resources_total() = info.resources_total();
  *req.mutable_stats() = info.stats();
  HostStats host = host_ = host_stats_.Read();
  req.mutable_stats()->set_host_cpu_percent(host.cpu_percent);
  req.mutable_stats()->set_host_num_cpus(host.num_cpus);
  req.mutable_stats()->set_host_mem_total_bytes(host.mem_total_bytes);
  req.mutable_stats()->set_host_mem_used_bytes(host.mem_used_bytes);
  req.set_resources_changed(resources_dirty_);
  req.set_resources_version(info.resources_version());
  resources_dirty_ = false;
  // A GCS that lost the cluster is noticed by the subscriber (OnClusterLost).
  gcs_->ReportNode(req, [this](absl::Status s, proto::ReportNodeReply reply) {
    if (!s.ok()) {
      resources_dirty_ = true;  // send them again next time
      LUMEN_LOG_DEBUG("report to GCS failed: {}", s.ToString());
      return;
    }
    if (reply.node_is_dead() && fatal_) fatal_("the GCS declared this node dead");
  });
}

void NodeManager::WatchDrivers() {
  for (auto it = drivers_.begin(); it != drivers_.end();) {
    if (ProcessAlive(it->first)) {
      ++it;
      continue;
    }
    LUMEN_LOG_INFO("driver exited pid={} job={}", it->first, it->second.Hex());
    proto::MarkJobFinishedRequest req;
    req.set_job_id(it->second.Binary());
    gcs_->MarkJobFinished(req, [](absl::Status, proto::MarkJobFinishedReply) {},
                          {.timeout_ms = 5'000, .retry_for_ms = 10'000});
    it = drivers_.erase(it);
  }
}

void NodeManager::Stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  if (metrics_source_) metrics_source_->Close();
  std::promise<void> done;
  loop_.Post("node_manager.stop", [&] {
    heartbeat_timer_.reset();
    log_timer_.reset();
    pool_timer_.reset();
    driver_timer_.reset();
    if (subscriber_) subscriber_->Stop();
    if (jobs_) jobs_->Shutdown();
    if (leases_) leases_->Shutdown();
    if (pool_) pool_->Shutdown();
    if (pulls_) pulls_->Shutdown();
    if (store_) store_->Clear();
    RemoveShmObjectsWithPrefix(store_prefix_);  // also what was never sealed
    done.set_value();
  });
  done.get_future().wait();
  if (gcs_ && leases_) {
    proto::UnregisterNodeRequest req;
    req.set_node_id(node_id_.Binary());
    req.set_reason(stop_reason_);
    (void)rpc::CallSync<proto::UnregisterNodeReply>(
        [&](auto cb) { gcs_->UnregisterNode(req, cb, {.timeout_ms = 1'000}); });
  }
  loop_.Stop();
  server_.Shutdown();
  metrics_.reset();
  node_clients_.Clear();
  worker_clients_.Clear();
  subscriber_.reset();
  gcs_.reset();
}

// ---- handlers ----

#define LUMEN_REQUIRE_READY()                                       \
  if (!leases_) {                                                   \
    send(absl::UnavailableError("node manager is still starting")); \
    return;                                                         \
  }

void NodeManager::HandleRegisterWorker(const proto::RegisterWorkerRequest& request,
                                       proto::RegisterWorkerReply* reply, rpc::SendReply send) {
  LUMEN_REQUIRE_READY();
  pool_->HandleRegisterWorker(request, reply, std::move(send));
}

void NodeManager::HandleRegisterDriver(const proto::RegisterDriverRequest& request,
                                       proto::RegisterDriverReply* reply, rpc::SendReply send) {
  LUMEN_REQUIRE_READY();
  if (request.pid() > 0) drivers_[request.pid()] = JobId::FromBinary(request.job_id());
  reply->set_node_id(node_id_.Binary());
  reply->set_store_prefix(store_prefix_);
  reply->set_session_dir(session_dir_);
  send(absl::OkStatus());
}

void NodeManager::HandleRequestWorkerLease(const proto::RequestWorkerLeaseRequest& request,
                                           proto::RequestWorkerLeaseReply* reply,
                                           rpc::SendReply send) {
  LUMEN_REQUIRE_READY();
  leases_->HandleRequestWorkerLease(request, reply, std::move(send));
}

void NodeManager::HandleReturnWorker(const proto::ReturnWorkerRequest& request,
                                     proto::ReturnWorkerReply* reply, rpc::SendReply send) {
  LUMEN_REQUIRE_READY();
  leases_->HandleReturnWorker(request, reply, std::move(send));
}

void NodeManager::HandleWorkerBlocked(const proto::WorkerBlockedRequest& request,
                                      proto::WorkerBlockedReply* reply, rpc::SendReply send) {
  LUMEN_REQUIRE_READY();
  leases_->HandleWorkerBlocked(request, reply, std::move(send));
}

void NodeManager::HandleSealObject(const proto::SealObjectRequest& request,
                                   proto::SealObjectReply* reply, rpc::SendReply send) {
  LUMEN_REQUIRE_READY();
  send(store_->Seal(ObjectId::FromBinary(request.object_id()), request.size(), request.owner(),
                    request.temp_name()));
}

void NodeManager::HandlePullObject(const proto::PullObjectRequest& request,
                                   proto::PullObjectReply* reply, rpc::SendReply send) {
  LUMEN_REQUIRE_READY();
  pulls_->Pull(request.object(), std::move(send));
}

void NodeManager::HandleReadObjectChunk(const proto::ReadObjectChunkRequest& request,
                                        proto::ReadObjectChunkReply* reply, rpc::SendReply send) {
  LUMEN_REQUIRE_READY();
  ObjectId id = ObjectId::FromBinary(request.object_id());
  auto data = store_->ReadChunk(id, request.offset(), request.length());
  if (!data.ok()) {
    send(data.status());
    return;
  }
  reply->set_data(std::move(*data));
  reply->set_total_size(store_->SizeOf(id));
  send(absl::OkStatus());
}

void NodeManager::HandleFreeObjects(const proto::FreeObjectsRequest& request,
                                    proto::FreeObjectsReply* reply, rpc::SendReply send) {
  LUMEN_REQUIRE_READY();
  std::vector<ObjectId> ids;
  for (const auto& id : request.object_ids()) ids.push_back(ObjectId::FromBinary(id));
  store_->Free(ids);
  ResourcesChanged();  // store usage is part of the report
  send(absl::OkStatus());
}

void NodeManager::HandleKillWorker(const proto::KillWorkerRequest& request,
                                   proto::KillWorkerReply* reply, rpc::SendReply send) {
  LUMEN_REQUIRE_READY();
  leases_->KillWorker(WorkerId::FromBinary(request.worker_id()),
                      request.reason().empty() ? "asked to stop" : request.reason());
  send(absl::OkStatus());
}

void NodeManager::HandlePrepareBundles(const proto::PrepareBundlesRequest& request,
                                       proto::PrepareBundlesReply* reply, rpc::SendReply send) {
  LUMEN_REQUIRE_READY();
  std::vector<std::pair<int, ResourceSet>> bundles;
  for (const auto& b : request.bundles()) {
    std::map<std::string, double> amounts(b.resources().begin(), b.resources().end());
    auto r = ResourceSet::FromMap(amounts);
    if (!r.ok()) {
      send(r.status());
      return;
    }
    bundles.emplace_back(b.index(), *r);
  }
  PlacementGroupId group = PlacementGroupId::FromBinary(request.group_id());
  reply->set_prepared(leases_->PrepareBundles(group, bundles));
  if (reply->prepared() && request.commit()) leases_->CommitBundles(group);
  reply->set_resources_version(leases_->resources_version());
  send(absl::OkStatus());
}

void NodeManager::HandleCommitBundles(const proto::CommitBundlesRequest& request,
                                      proto::CommitBundlesReply* reply, rpc::SendReply send) {
  LUMEN_REQUIRE_READY();
  leases_->CommitBundles(PlacementGroupId::FromBinary(request.group_id()));
  send(absl::OkStatus());
}

void NodeManager::HandleReturnBundles(const proto::ReturnBundlesRequest& request,
                                      proto::ReturnBundlesReply* reply, rpc::SendReply send) {
  LUMEN_REQUIRE_READY();
  PlacementGroupId group = PlacementGroupId::FromBinary(request.group_id());
  if (request.removed()) {
    leases_->OnGroupRemoved(group);
  } else {
    leases_->ReturnBundles(group, {request.indices().begin(), request.indices().end()});
  }
  reply->set_resources_version(leases_->resources_version());
  send(absl::OkStatus());
}

void NodeManager::HandleGetNodeStats(const proto::GetNodeStatsRequest& request,
                                     proto::GetNodeStatsReply* reply, rpc::SendReply send) {
  LUMEN_REQUIRE_READY();
  *reply->mutable_node() = SelfInfo();
  send(absl::OkStatus());
}

void NodeManager::HandleSubmitJob(const proto::SubmitJobRequest& request,
                                  proto::SubmitJobReply* reply, rpc::SendReply send) {
  LUMEN_REQUIRE_READY();
  jobs_->HandleSubmitJob(request, reply, std::move(send));
}

void NodeManager::HandleStopJob(const proto::StopJobRequest& request, proto::StopJobReply* reply,
                                rpc::SendReply send) {
  LUMEN_REQUIRE_READY();
  jobs_->HandleStopJob(request, reply, std::move(send));
}

void NodeManager::HandleReadJobLogs(const proto::ReadJobLogsRequest& request,
                                    proto::ReadJobLogsReply* reply, rpc::SendReply send) {
  LUMEN_REQUIRE_READY();
  jobs_->HandleReadJobLogs(request, reply, std::move(send));
}

void NodeManager::HandleReadLog(const proto::ReadLogRequest& request, proto::ReadLogReply* reply,
                                rpc::SendReply send) {
  LUMEN_REQUIRE_READY();
  std::string path;
  bool running = true;
  if (request.target_case() == proto::ReadLogRequest::kWorkerId) {
    if (request.worker_id().size() != WorkerId::kSize) {
      send(absl::InvalidArgumentError("ReadLog: a worker id is " + std::to_string(WorkerId::kSize) +
                                      " bytes"));
      return;
    }
    WorkerId id = WorkerId::FromBinary(request.worker_id());
    // As the worker pool names them (worker_pool.cc).
    path = node_dir_ + "/logs/worker-" + id.Short() + (request.stderr() ? ".err" : ".out");
    running = pool_->Find(id) != nullptr;
  } else if (request.target_case() == proto::ReadLogRequest::kNodeManager) {
    std::error_code ec;
    path = std::filesystem::read_symlink("/proc/self/fd/2", ec).string();
    if (ec || !std::filesystem::is_regular_file(path, ec)) {
      send(absl::FailedPreconditionError(
          "this node manager does not log to a file (its stderr is a terminal or a pipe)"));
      return;
    }
  } else {
    send(absl::InvalidArgumentError("ReadLog: say whose log (a worker id, or the node manager)"));
    return;
  }
  constexpr int64_t kDefault = int64_t{1} << 20, kMax = int64_t{4} << 20;
  int64_t max = request.max_bytes() <= 0 ? kDefault : std::min(request.max_bytes(), kMax);
  absl::StatusOr<FileRange> got = ReadFileRange(path, request.offset(), max);
  if (!got.ok()) {
    send(absl::NotFoundError("no such log on node " + node_id_.Short() + " (" + path + ")"));
    return;
  }
  reply->set_data(std::move(got->data));
  reply->set_next_offset(got->next_offset);
  reply->set_path(path);
  reply->set_running(running);
  send(absl::OkStatus());
}

void NodeManager::HandleListWorkers(const proto::ListWorkersRequest& request,
                                    proto::ListWorkersReply* reply, rpc::SendReply send) {
  LUMEN_REQUIRE_READY();
  for (auto& w : pool_->Describe()) *reply->add_workers() = std::move(w);
  send(absl::OkStatus());
}

void NodeManager::HandleListObjects(const proto::ListObjectsRequest& request,
                                    proto::ListObjectsReply* reply, rpc::SendReply send) {
  LUMEN_REQUIRE_READY();
  int limit = request.limit() <= 0 ? 100 : std::min(request.limit(), 10'000);
  std::vector<ObjectId> ids = store_->AllIds();
  int64_t bytes = 0;
  for (const auto& id : ids) {
    int64_t size = store_->SizeOf(id);
    bytes += size;
    if (reply->objects_size() >= limit) continue;
    proto::ObjectRecord* r = reply->add_objects();
    r->set_object_id(id.Binary());
    r->set_size(size);
  }
  reply->set_total_objects(static_cast<int64_t>(ids.size()));
  reply->set_total_bytes(bytes);
  send(absl::OkStatus());
}

void NodeManager::RotateLogs() { RotateLogFiles(node_dir_ + "/logs", config_.max_log_bytes); }

int RotateLogFiles(const std::string& dir, int64_t max_bytes) {
  // A log past the limit is copied to NAME.1 (replacing the one before) and
  // emptied: its writer appends (O_APPEND), so it goes on at the start. A
  // worker's stdout and stderr thus hold at most twice the limit each.
  int rotated = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    bool ours = name.rfind("worker-", 0) == 0 || name.rfind("job-", 0) == 0;
    if (!ours || name.substr(name.size() - 2) == ".1") continue;
    std::error_code size_ec;
    uintmax_t size = entry.file_size(size_ec);
    if (size_ec || size <= static_cast<uintmax_t>(max_bytes)) continue;
    std::error_code copy_ec;
    std::filesystem::copy_file(entry.path(), entry.path().string() + ".1",
                               std::filesystem::copy_options::overwrite_existing, copy_ec);
    if (!copy_ec) std::filesystem::resize_file(entry.path(), 0, copy_ec);
    if (copy_ec) {
      LUMEN_LOG_WARN("cannot rotate {}: {}", entry.path().string(), copy_ec.message());
      continue;
    }
    rotated++;
  }
  return rotated;
}

}  // namespace lumen::node
