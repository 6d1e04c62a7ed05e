// CoreWorker; see core_worker.h.
#include "worker/core_worker.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <future>
#include <iostream>
#include <thread>

#include "absl/strings/str_join.h"
#include "common/ids.h"
#include "common/logging.h"
#include "rpc/metrics.h"
#include "rpc/rpc.h"
#include "scheduling/placement_group.h"
#include "scheduling/resources.h"

namespace lumen::worker {
namespace {

constexpr int kDefaultMaxRetries = 3;

class InlineBuffer : public internal::Buffer {
 public:
  explicit InlineBuffer(std::shared_ptr<const std::string> bytes) : bytes_(std::move(bytes)) {}
  const char* data() const override { return bytes_->data(); }
  size_t size() const override { return bytes_->size(); }

 private:
  std::shared_ptr<const std::string> bytes_;
};

class MappedBuffer : public internal::Buffer {
 public:
  explicit MappedBuffer(std::unique_ptr<MappedObject> mapping) : mapping_(std::move(mapping)) {}
  const char* data() const override { return mapping_->data(); }
  size_t size() const override { return mapping_->size(); }
  bool in_shared_memory() const override { return true; }

 private:
  std::unique_ptr<MappedObject> mapping_;
};

}  // namespace

CoreWorker::CoreWorker(CoreWorkerOptions options)
    : options_(std::move(options)),
      server_(options_.is_driver ? "driver" : "worker",
              rpc::ServerOptions{options_.host, 0, options_.token}),
      node_managers_(options_.token, &loop_),
      workers_(options_.token, &loop_),
      refs_([this](const ObjectId& id, const std::vector<ObjectLocation>& locations) {
        OnFree(id, locations);
      }) {}

CoreWorker::~CoreWorker() { Shutdown(); }

absl::Status CoreWorker::StartCommon() {
  server_.AddService(rpc::MakeCoreWorkerService(server_.MakeContext(&loop_), this));
  loop_.Start();
  started_ = true;
  LUMEN_RETURN_IF_ERROR(server_.Start());
  self_.set_host(options_.host);
  self_.set_port(server_.port());
  self_.set_worker_id(options_.worker_id.Binary());
  gcs_ = std::make_unique<rpc::GcsClient>(options_.gcs_address, options_.token, &loop_);
  return absl::OkStatus();
}

CoreWorker::ApiCall::~ApiCall() {
  if (--w_->active_calls_ == 0) {
    std::lock_guard<std::mutex> lock(w_->api_mu_);
    w_->api_cv_.notify_all();
  }
}

void CoreWorker::FinishSetup() {
  self_.set_node_id(options_.node_id.Binary());
  local_sync_ = std::make_unique<rpc::NodeManagerClient>(options_.node_manager_address,
                                                         options_.token, nullptr);
  io_ = std::make_unique<ObjectIo>(local_sync_.get(), options_.node_id, options_.store_prefix);
  tasks_ = std::make_unique<TaskManager>(
      &memory_store_, &refs_,
      [this](const ObjectId& id, const ObjectLocation& where) { FreeCopy(id, where); });
  // LUMEN_TASK_EVENTS=0 turns the state API's task events off in this
  // process (as Ray's task_events_report_interval_ms=0).
  const char* events_env = std::getenv("LUMEN_TASK_EVENTS");
  task_events_on_ = events_env == nullptr || std::string(events_env) != "0";
  if (task_events_on_) {
    tasks_->set_on_state(
        [this](const proto::TaskSpec& spec, proto::TaskState state, const std::string& error) {
          task_events_.Record(spec, state, error);
        });
  }
  resolver_ = std::make_unique<DependencyResolver>(&loop_, &memory_store_, tasks_.get());
  submitter_ =
      std::make_unique<TaskSubmitter>(&loop_, options_.node_manager_address, self_, resolver_.get(),
                                      tasks_.get(), &node_managers_, &workers_);
  actor_submitter_ = std::make_unique<ActorTaskSubmitter>(
      &loop_, gcs_.get(), resolver_.get(), tasks_.get(), &workers_, options_.worker_id.Binary());
  executor_ = std::make_unique<TaskExecutor>(
      io_.get(), [this](const TaskId& t) { SetCurrentTask(t); },
      [this](const ActorId& actor, int restarts) { OnActorCreated(actor, restarts); },
      [this](const proto::TaskSpec& spec, proto::TaskState state, const std::string& error) {
        if (task_events_on_) task_events_.Record(spec, state, error, &self_);
      });
  loop_.Post("core_worker.task_events", [this] {
    task_events_timer_ = loop_.RunEvery("core_worker.task_events", std::chrono::seconds(1),
                                        [this] { task_events_.Flush(gcs_.get()); });
  });
  // Metrics (the process registry: user metrics, this worker's RPC server)
  // go to the node manager, which exposes them.
  loop_.Post("core_worker.metrics", [this] {
    metrics_timer_ =
        loop_.RunEvery("core_worker.metrics", std::chrono::seconds(2), [this] { ReportMetrics(); });
  });
  loop_.Post("core_worker.watch_nodes", [this] {
    node_watch_ = std::make_unique<gcs::GcsSubscriber>(
        gcs_.get(), &loop_, std::vector<proto::Channel>{proto::NODE_CHANGES},
        [this](const proto::PubMessage& m) {
          if (m.node().state() == proto::NodeInfo::DEAD) {
            NodeId node = NodeId::FromBinary(m.node().node_id());
            OnNodeDead(node, "node " + node.Short() + " died (" + m.node().death_reason() + ")");
          }
        },
        [this] {  // deaths published while not subscribed
          gcs_->GetAllNodes(proto::GetAllNodesRequest(),
                            [this](absl::Status s, proto::GetAllNodesReply reply) {
                              if (!s.ok()) return;
                              for (const auto& n : reply.nodes()) {
                                if (n.state() != proto::NodeInfo::DEAD) continue;
                                NodeId node = NodeId::FromBinary(n.node_id());
                                OnNodeDead(node, "node " + node.Short() + " died");
                              }
                            });
        });
    node_watch_->OnClusterLost([this](const std::string& why) { OnClusterLost(why); });
    node_watch_->Start();
  });
}

void CoreWorker::ReportMetrics() {
  std::vector<prometheus::MetricFamily> families = rpc::ProcessRegistry().Collect();
  // Series never observed say nothing: leave them out.
  for (auto& f : families) {
    if (f.type != prometheus::MetricType::Histogram) continue;
    auto empty = [](const prometheus::ClientMetric& m) { return m.histogram.sample_count == 0; };
    f.metric.erase(std::remove_if(f.metric.begin(), f.metric.end(), empty), f.metric.end());
  }
  auto no_series = [](const prometheus::MetricFamily& f) { return f.metric.empty(); };
  families.erase(std::remove_if(families.begin(), families.end(), no_series), families.end());
  if (families.empty()) return;
  proto::ReportMetricsRequest req;
  req.set_worker_id(options_.worker_id.Binary());
  rpc::ToProto(families, req.mutable_families());
  node_managers_.Get(options_.node_manager_address)
      ->ReportMetrics(req,
                      [](absl::Status s, proto::ReportMetricsReply) {
                        if (!s.ok()) LUMEN_LOG_DEBUG("metrics not reported: {}", s.ToString());
                      },
                      {.timeout_ms = 2'000});
}

void CoreWorker::OnClusterLost(const std::string& why) {
  absl::Status lost = absl::UnavailableError("the cluster is gone: " + why);
  {
    std::lock_guard<std::mutex> lock(lost_mu_);
    cluster_lost_ = lost;
  }
  tasks_->FailAll(lost);
  if (!options_.is_driver) {  // nothing left to work for
    LUMEN_LOG_ERROR("worker exiting: {}", why);
    logging::Flush();
    ::_exit(1);
  }
}

void CoreWorker::FlushTaskEvents(int64_t timeout_ms) {
  if (gcs_ && ClusterLost().ok()) task_events_.Flush(gcs_.get(), /*sync=*/true, timeout_ms);
}

absl::Status CoreWorker::ClusterLost() const {
  std::lock_guard<std::mutex> lock(lost_mu_);
  return cluster_lost_;
}

absl::Status CoreWorker::StartDriver(const CodePackage& package, const std::string& entrypoint) {
  driver_only_ = package.driver_only;
  LUMEN_RETURN_IF_ERROR(StartCommon());
  LUMEN_ASSIGN_OR_RETURN(std::vector<proto::CodeFile> code,
                         UploadCodePackage(gcs_.get(), package.files));
  proto::AddJobRequest add;
  *add.mutable_job()->mutable_driver() = self_;
  add.mutable_job()->set_driver_pid(::getpid());
  add.mutable_job()->set_entrypoint(entrypoint);
  for (const auto& f : code) *add.mutable_job()->add_code() = f;
  add.set_request_id(LeaseId::FromRandom().Binary());  // a retry finds the same job
  auto job = rpc::CallSync<proto::AddJobReply>(
      [&](auto cb) { gcs_->AddJob(add, cb, {.timeout_ms = 10'000, .retry_for_ms = 5'000}); });
  if (!job.ok()) return Annotate(job.status(), "cannot register the job with the GCS");
  options_.job_id = JobId::FromBinary(job->job_id());

  proto::RegisterDriverRequest reg;
  reg.set_job_id(options_.job_id.Binary());
  reg.set_pid(::getpid());
  auto registered = rpc::CallSync<proto::RegisterDriverReply>([&](auto cb) {
    node_managers_.Get(options_.node_manager_address)
        ->RegisterDriver(reg, cb, {.timeout_ms = 10'000, .retry_for_ms = 5'000});
  });
  if (!registered.ok()) {
    return Annotate(registered.status(),
                    "cannot register with the node manager at " + options_.node_manager_address);
  }
  options_.node_id = NodeId::FromBinary(registered->node_id());
  options_.store_prefix = registered->store_prefix();
  process_task_ = DriverTaskId(options_.job_id);
  FinishSetup();
  LUMEN_LOG_INFO("driver started job={} node={}", options_.job_id.Hex(), options_.node_id.Short());
  return absl::OkStatus();
}

absl::Status CoreWorker::StartWorker(const std::string& startup_error) {
  LUMEN_RETURN_IF_ERROR(StartCommon());
  // Ids made outside any task (threads of runtime components, such as the
  // serve controller's loop) derive from this, unique to the process: two
  // workers of one job (or one restarted) never make the same actor id.
  process_task_ = NormalTaskId(options_.job_id, DriverTaskId(options_.job_id),
                               Hash64(options_.worker_id.Binary()));
  FinishSetup();
  proto::RegisterWorkerRequest req;
  req.set_worker_id(options_.worker_id.Binary());
  req.set_pid(::getpid());
  req.set_port(server_.port());
  req.set_job_id(options_.job_id.Binary());
  req.set_startup_error(startup_error);
  auto reply = rpc::CallSync<proto::RegisterWorkerReply>([&](auto cb) {
    node_managers_.Get(options_.node_manager_address)
        ->RegisterWorker(req, cb, {.timeout_ms = 10'000, .retry_for_ms = 10'000});
  });
  if (!reply.ok()) return Annotate(reply.status(), "cannot register with the node manager");
  return absl::OkStatus();
}

void CoreWorker::RunTaskLoop() { executor_->Run(); }

void CoreWorker::Shutdown() {
  if (stopped_.exchange(true) || !started_) return;
  // Wake every API call in progress: waits in the memory store end, and so
  // do synchronous calls to the node manager.
  memory_store_.Shutdown();
  if (local_sync_) local_sync_->Close();
  if (executor_) executor_->Stop();
  {
    std::unique_lock<std::mutex> lock(api_mu_);
    if (!api_cv_.wait_for(lock, std::chrono::seconds(5), [this] { return active_calls_ == 0; })) {
      LUMEN_LOG_WARN("shutting down with {} API calls still running", active_calls_.load());
    }
  }
  // What this process saw of its tasks reaches the state API before it goes
  // (not when the cluster is known to be gone: no wait for a dead GCS).
  bool lost;
  {
    std::lock_guard<std::mutex> lock(lost_mu_);
    lost = !cluster_lost_.ok();
  }
  if (gcs_ && !lost) task_events_.Flush(gcs_.get(), /*sync=*/true, 2'000);
  if (options_.is_driver && !options_.job_id.IsNil() && gcs_) {
    proto::MarkJobFinishedRequest req;
    req.set_job_id(options_.job_id.Binary());
    (void)rpc::CallSync<proto::MarkJobFinishedReply>(
        [&](auto cb) { gcs_->MarkJobFinished(req, cb, {.timeout_ms = 2'000}); });
  }
  std::promise<void> done;
  loop_.Post("core_worker.stop", [&] {
    task_events_timer_.reset();
    metrics_timer_.reset();
    if (submitter_) submitter_->Shutdown();
    actor_submitter_.reset();
    if (node_watch_) node_watch_->Stop();
    node_watch_.reset();
    FlushFrees();
    done.set_value();
  });
  done.get_future().wait_for(std::chrono::seconds(2));
  loop_.Stop();
  server_.Shutdown();
  node_managers_.Clear();
  workers_.Clear();
  gcs_.reset();
}

namespace {

// The task a worker's executor thread runs, with the counters that make the
// ids of what it creates (so a retried task makes the same ids).
struct ThreadTask {
  bool active = false;
  TaskId task;
  uint64_t submits = 0;
  uint64_t puts = 0;
  uint64_t actors = 0;
};
thread_local ThreadTask t_task;

}  // namespace

void CoreWorker::SetCurrentTask(const TaskId& task) {
  t_task.active = !task.IsNil();
  t_task.task = task;
  t_task.submits = t_task.puts = t_task.actors = 0;
}

TaskId CoreWorker::CurrentTask() const { return t_task.active ? t_task.task : process_task_; }

uint64_t CoreWorker::NextSubmitIndex() {
  return t_task.active ? ++t_task.submits : ++submit_counter_;
}

uint64_t CoreWorker::NextPutIndex() { return t_task.active ? ++t_task.puts : ++put_counter_; }

uint64_t CoreWorker::NextActorIndex() { return t_task.active ? ++t_task.actors : ++actor_counter_; }

void CoreWorker::OnActorCreated(const ActorId& actor, int restarts) {
  std::lock_guard<std::mutex> lock(task_mu_);
  actor_ = actor;
  actor_restarts_ = restarts;
}

RuntimeContext CoreWorker::Context() const {
  RuntimeContext c;
  c.job = options_.job_id;
  c.node = options_.node_id;
  c.worker = options_.worker_id;
  c.task = CurrentTask();
  c.is_driver = options_.is_driver;
  c.gcs_address = options_.gcs_address;
  std::lock_guard<std::mutex> lock(task_mu_);
  c.actor = actor_;
  c.actor_restarts = actor_restarts_;
  c.gpu_ids = gpu_ids_;
  return c;
}

void CoreWorker::SetGpuIds(const google::protobuf::RepeatedField<int32_t>& ids) {
  std::lock_guard<std::mutex> lock(task_mu_);
  std::vector<int> next(ids.begin(), ids.end());
  if (next == gpu_ids_) return;
  if (gpu_ids_.empty() && !cuda_visible_before_) {
    const char* before = std::getenv("CUDA_VISIBLE_DEVICES");
    cuda_visible_before_ = before ? before : "";
  }
  gpu_ids_ = std::move(next);
  // Like Ray: CUDA (libtorch, OpenCV, the user's code) sees only the GPUs
  // the node leased to this task or actor, renumbered from 0.
  if (!gpu_ids_.empty()) {
    setenv("CUDA_VISIBLE_DEVICES", absl::StrJoin(gpu_ids_, ",").c_str(), 1);
  } else if (cuda_visible_before_ && !cuda_visible_before_->empty()) {
    setenv("CUDA_VISIBLE_DEVICES", cuda_visible_before_->c_str(), 1);
  } else {
    unsetenv("CUDA_VISIBLE_DEVICES");
  }
}

// ---- objects ----

ObjectId CoreWorker::FailedObject(const ObjectId& id, const absl::Status& error) {
  memory_store_.Put(id, StoredObject::Error(error));
  return id;
}

ObjectId CoreWorker::Put(size_t size, const std::function<void(char*)>& write) {
  ApiCall call(this);
  if (call.stopped()) return ObjectId();
  ObjectId id = PutObjectId(CurrentTask(), static_cast<uint32_t>(NextPutIndex()));
  refs_.AddOwned(id);
  if (size <= kMaxInlineBytes) {
    std::string data(size, '\0');
    write(data.data());
    memory_store_.Put(id, StoredObject::Value(std::move(data)));
    return id;
  }
  absl::Status stored = io_->PutInStore(id, size, write, self_);
  if (!stored.ok()) return FailedObject(id, Annotate(stored, "Put failed"));
  refs_.AddLocation(id, ObjectLocation{options_.node_id, options_.node_manager_address});
  memory_store_.Put(id, StoredObject::InStore(options_.node_id, options_.node_manager_address,
                                              static_cast<int64_t>(size)));
  return id;
}

absl::StatusOr<std::vector<std::shared_ptr<internal::Buffer>>> CoreWorker::Get(
    const std::vector<ObjectId>& ids, int64_t timeout_ms) {
  ApiCall call(this);
  if (call.stopped()) return absl::CancelledError("lumen is shutting down");
  for (const ObjectId& id : ids) {
    if (!refs_.Has(id) && !memory_store_.Get(id)) {
      return absl::NotFoundError("object " + id.Hex() +
                                 " is not known to this process: it was freed (no ObjectRef "
                                 "was left) or it belongs to another program");
    }
  }
  auto start = std::chrono::steady_clock::now();
  std::vector<bool> ready;
  bool ok = WaitInStore(ids, ids.size(), timeout_ms, &ready);
  if (!ok) {
    if (stopped_) return absl::CancelledError("lumen is shutting down");
    size_t missing = std::count(ready.begin(), ready.end(), false);
    size_t first = std::find(ready.begin(), ready.end(), false) - ready.begin();
    return absl::DeadlineExceededError("Get timed out after " + std::to_string(timeout_ms) +
                                       " ms: " + std::to_string(missing) + " of " +
                                       std::to_string(ids.size()) +
                                       " objects not ready (first: " + ids[first].Hex() + ")");
  }
  auto time_left = [&]() -> int64_t {
    if (timeout_ms < 0) return -1;
    auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - start)
                     .count();
    return std::max<int64_t>(1, timeout_ms - spent);
  };
  std::vector<std::shared_ptr<internal::Buffer>> out;
  for (const ObjectId& id : ids) {
    while (true) {  // again while a lost copy is being made again
      std::optional<StoredObject> o = memory_store_.Get(id);
      if (!o) return absl::NotFoundError("object " + id.Hex() + " was freed while being read");
      if (o->kind == StoredObject::Kind::kError) return o->error;
      if (o->kind == StoredObject::Kind::kValue) {
        out.push_back(std::make_shared<InlineBuffer>(o->value));
        break;
      }
      proto::ObjectRefInfo ref;
      ref.set_object_id(id.Binary());
      *ref.mutable_owner() = self_;
      ref.set_node_id(o->node.Binary());
      ref.set_size(o->size);
      auto mapping = io_->Fetch(ref, time_left());
      if (mapping.ok()) {
        out.push_back(std::make_shared<MappedBuffer>(std::move(*mapping)));
        break;
      }
      if (!RebuildAfterFailedFetch(id, o->node, mapping.status())) return mapping.status();
      if (!WaitInStore({id}, 1, time_left(), &ready)) {
        if (stopped_) return absl::CancelledError("lumen is shutting down");
        return absl::DeadlineExceededError("Get timed out after " + std::to_string(timeout_ms) +
                                           " ms: object " + id.Hex() +
                                           " was lost and is being made again");
      }
    }
  }
  return out;
}

absl::StatusOr<std::vector<bool>> CoreWorker::Wait(const std::vector<ObjectId>& ids, int num_ready,
                                                   int64_t timeout_ms) {
  ApiCall call(this);
  if (call.stopped()) return absl::CancelledError("lumen is shutting down");
  if (num_ready < 0 || num_ready > static_cast<int>(ids.size())) {
    return absl::InvalidArgumentError("Wait for " + std::to_string(num_ready) + " of " +
                                      std::to_string(ids.size()) +
                                      " objects: want between 0 and the number of objects");
  }
  for (const ObjectId& id : ids) {
    if (!refs_.Has(id) && !memory_store_.Get(id)) {
      return absl::NotFoundError("object " + id.Hex() + " is not known to this process");
    }
  }
  std::vector<bool> ready;
  WaitInStore(ids, static_cast<size_t>(num_ready), timeout_ms, &ready);
  return ready;
}

void CoreWorker::OnReady(const ObjectId& id, ReadyFn done) {
  memory_store_.OnReady(id, [this, id, done = std::move(done)](const StoredObject& o) {
    switch (o.kind) {
      case StoredObject::Kind::kValue:
        done(std::shared_ptr<internal::Buffer>(std::make_shared<InlineBuffer>(o.value)));
        return;
      case StoredObject::Kind::kError:
        done(o.error);
        return;
      case StoredObject::Kind::kInStore:  // reading it may block: not on this thread
        std::thread([this, id, done] {
          auto got = Get({id}, -1);
          if (got.ok()) {
            done((*got)[0]);
          } else {
            done(got.status());
          }
        }).detach();
        return;
    }
  });
}

absl::StatusOr<std::optional<std::string>> CoreWorker::KvGet(const std::string& ns,
                                                             const std::string& key) {
  proto::KvGetRequest req;
  req.set_ns(ns);
  req.set_key(key);
  LUMEN_ASSIGN_OR_RETURN(auto reply, rpc::CallSync<proto::KvGetReply>([&](auto cb) {
                           gcs_->KvGet(req, cb, {.timeout_ms = 10'000, .retry_for_ms = 10'000});
                         }));
  if (!reply.found()) return std::optional<std::string>();
  return std::optional<std::string>(reply.value());
}

absl::Status CoreWorker::KvPut(const std::string& ns, const std::string& key,
                               const std::string& value) {
  proto::KvPutRequest req;
  req.set_ns(ns);
  req.set_key(key);
  req.set_value(value);
  req.set_overwrite(true);
  return rpc::CallSync<proto::KvPutReply>(
             [&](auto cb) { gcs_->KvPut(req, cb, {.timeout_ms = 10'000, .retry_for_ms = 10'000}); })
      .status();
}

namespace {
constexpr rpc::CallOptions kKvCall{.timeout_ms = 10'000, .retry_for_ms = 10'000};
}  // namespace

void CoreWorker::KvGetAsync(const std::string& ns, const std::string& key, KvGetDone done) {
  proto::KvGetRequest req;
  req.set_ns(ns);
  req.set_key(key);
  gcs_->KvGet(
      req,
      [done = std::move(done)](absl::Status s, proto::KvGetReply reply) {
        if (!s.ok()) return done(s);
        done(reply.found() ? std::optional<std::string>(reply.value()) : std::nullopt);
      },
      kKvCall);
}

void CoreWorker::KvPutAsync(const std::string& ns, const std::string& key, const std::string& value,
                            StatusDone done) {
  proto::KvPutRequest req;
  req.set_ns(ns);
  req.set_key(key);
  req.set_value(value);
  req.set_overwrite(true);
  gcs_->KvPut(
      req, [done = std::move(done)](absl::Status s, proto::KvPutReply) { done(s); }, kKvCall);
}

void CoreWorker::KvDelAsync(const std::string& ns, const std::string& key, StatusDone done) {
  proto::KvDelRequest req;
  req.set_ns(ns);
  req.set_key(key);
  gcs_->KvDel(
      req, [done = std::move(done)](absl::Status s, proto::KvDelReply) { done(s); }, kKvCall);
}

absl::Status CoreWorker::KvDel(const std::string& ns, const std::string& key) {
  proto::KvDelRequest req;
  req.set_ns(ns);
  req.set_key(key);
  return rpc::CallSync<proto::KvDelReply>([&](auto cb) { gcs_->KvDel(req, cb, kKvCall); }).status();
}

absl::StatusOr<std::vector<std::string>> CoreWorker::KvKeys(const std::string& ns,
                                                            const std::string& prefix) {
  proto::KvKeysRequest req;
  req.set_ns(ns);
  req.set_prefix(prefix);
  LUMEN_ASSIGN_OR_RETURN(auto reply, rpc::CallSync<proto::KvKeysReply>(
                                         [&](auto cb) { gcs_->KvKeys(req, cb, kKvCall); }));
  return std::vector<std::string>(reply.keys().begin(), reply.keys().end());
}

bool CoreWorker::WaitInStore(const std::vector<ObjectId>& ids, size_t num_ready, int64_t timeout_ms,
                             std::vector<bool>* ready) {
  if (memory_store_.Wait(ids, num_ready, 0, ready)) return true;
  if (timeout_ms == 0) return false;
  bool lend = !options_.is_driver && t_task.active;
  if (lend) NotifyBlocked(true);
  bool ok = memory_store_.Wait(ids, num_ready, timeout_ms, ready);
  if (lend) NotifyBlocked(false);
  return ok;
}

void CoreWorker::NotifyBlocked(bool blocked) {
  proto::WorkerBlockedRequest req;
  req.set_worker_id(options_.worker_id.Binary());
  req.set_blocked(blocked);
  (void)rpc::CallSync<proto::WorkerBlockedReply>(
      [&](auto cb) { local_sync_->WorkerBlocked(req, cb, {.timeout_ms = 5'000}); });
}

void CoreWorker::OnFree(const ObjectId& id, const std::vector<ObjectLocation>& locations) {
  memory_store_.Erase(id);
  if (tasks_) tasks_->ForgetLineage(id);
  for (const auto& where : locations) FreeCopy(id, where);
}

void CoreWorker::OnNodeDead(const NodeId& node, const std::string& why) {
  for (const auto& [id, left] : refs_.RemoveNode(node)) {
    std::optional<StoredObject> o = memory_store_.Get(id);
    if (!o || o->kind != StoredObject::Kind::kInStore || o->node != node) continue;
    if (left) {  // read the copy that is left from now on
      memory_store_.Put(id, StoredObject::InStore(left->node, left->node_manager, o->size));
      continue;
    }
    RebuildLost(id, "its only copy was on node " + node.Short() + ", which is gone: " + why);
  }
}

void CoreWorker::RebuildLost(const ObjectId& id, const std::string& why) {
  auto again = tasks_->Resubmit(id);
  if (!again.ok()) {
    FailedObject(id, absl::DataLossError(
                         "object " + id.Hex() + " is lost: " + why +
                         "; it cannot be made again: " + std::string(again.status().message())));
    return;
  }
  if (*again) submitter_->Submit(**again);
}

bool CoreWorker::RebuildAfterFailedFetch(const ObjectId& id, const NodeId& node,
                                         const absl::Status& error) {
  if (!refs_.Has(id) || stopped_ || !ClusterLost().ok()) return false;  // not ours to make again
  if (!absl::IsDataLoss(error) && !absl::IsUnavailable(error)) return false;
  auto done = std::make_shared<std::promise<bool>>();
  auto answer = done->get_future();
  loop_.Post("core_worker.rebuild_after_fetch", [this, done, id, node, error] {
    std::optional<StoredObject> o = memory_store_.Get(id);
    if (o && o->kind == StoredObject::Kind::kInStore && o->node == node) {
      refs_.RemoveLocation(id, node);
      RebuildLost(id, "its copy on node " + node.Short() + " could not be read (" +
                          std::string(error.message()) + ")");
    }  // else changed meanwhile: made again already, or failed
    done->set_value(true);
  });
  try {
    return answer.wait_for(std::chrono::seconds(30)) == std::future_status::ready && answer.get();
  } catch (const std::future_error&) {  // dropped unrun: shutting down
    return false;
  }
}

void CoreWorker::FreeCopy(const ObjectId& id, const ObjectLocation& where) {
  if (stopped_) return;
  std::lock_guard<std::mutex> lock(free_mu_);
  pending_frees_[where.node_manager].push_back(id);
  if (free_flush_posted_) return;
  free_flush_posted_ = true;
  loop_.Post("core_worker.flush_frees", [this] { FlushFrees(); });
}

void CoreWorker::FlushFrees() {
  std::map<std::string, std::vector<ObjectId>> batch;
  {
    std::lock_guard<std::mutex> lock(free_mu_);
    batch.swap(pending_frees_);
    free_flush_posted_ = false;
  }
  for (const auto& [node_manager, ids] : batch) {
    proto::FreeObjectsRequest req;
    for (const auto& id : ids) req.add_object_ids(id.Binary());
    node_managers_.Get(node_manager)
        ->FreeObjects(req, [](absl::Status, proto::FreeObjectsReply) {}, {.timeout_ms = 10'000});
  }
}

// ---- tasks ----

absl::StatusOr<proto::TaskSpec> CoreWorker::BuildSpec(proto::TaskType type, const TaskId& task,
                                                      const internal::TaskOptions& o,
                                                      std::vector<internal::TaskArg> args,
                                                      std::vector<ObjectId>* ref_args) {
  std::map<std::string, double> resources = o.resources;
  if (resources.empty() && type == proto::NORMAL_TASK) resources["CPU"] = 1;
  auto checked = ResourceSet::FromMap(resources);
  if (!checked.ok()) return checked.status();
  proto::TaskSpec spec;
  spec.set_type(type);
  spec.set_task_id(task.Binary());
  spec.set_job_id(options_.job_id.Binary());
  spec.set_parent_task_id(CurrentTask().Binary());
  spec.set_function_name(o.function_name);
  spec.set_signature(o.signature);
  if (!o.placement_group.IsNil() && type == proto::NORMAL_TASK) {
    // The task takes its share of the bundle's resources (scheduling/placement_group.h);
    // an actor's are rewritten by the GCS, which places it.
    resources = GroupDemand(*checked, o.placement_group, o.bundle_index).ToMap();
  }
  for (const auto& [name, amount] : resources) (*spec.mutable_resources())[name] = amount;
  spec.set_max_retries(o.max_retries < 0 ? kDefaultMaxRetries : o.max_retries);
  *spec.mutable_caller() = self_;
  spec.set_num_returns(1);
  if (!o.placement_group.IsNil()) {
    spec.set_placement_group_id(o.placement_group.Binary());
    spec.set_bundle_index(o.bundle_index);
  }
  switch (o.strategy.kind) {
    case SchedulingStrategy::Kind::kSpread:
      spec.mutable_strategy()->set_kind(proto::SchedulingStrategy::SPREAD);
      break;
    case SchedulingStrategy::Kind::kNodeAffinity:
      spec.mutable_strategy()->set_kind(proto::SchedulingStrategy::NODE_AFFINITY);
      spec.mutable_strategy()->set_node_id(o.strategy.node.Binary());
      spec.mutable_strategy()->set_soft(o.strategy.soft);
      break;
    default:
      break;
  }
  for (size_t i = 0; i < args.size(); ++i) {
    proto::TaskArg* arg = spec.add_args();
    if (!args[i].is_ref) {
      arg->set_value(std::move(args[i].value));
      continue;
    }
    if (!refs_.Has(args[i].ref)) {
      return absl::NotFoundError("argument " + std::to_string(i + 1) + " of " + o.function_name +
                                 " refers to object " + args[i].ref.Hex() +
                                 ", which this process does not know (freed, or a nil ObjectRef)");
    }
    arg->mutable_ref()->set_object_id(args[i].ref.Binary());
    *arg->mutable_ref()->mutable_owner() = self_;
    ref_args->push_back(args[i].ref);
  }
  return spec;
}

absl::Status CoreWorker::CheckCallable(const std::string& function_name) const {
  if (function_name.empty()) {
    return absl::NotFoundError(
        "this function is not registered: add LUMEN_REMOTE(f) next to its definition, in a "
        "shared library the driver links");
  }
  if (driver_only_.count(function_name)) {
    return absl::FailedPreconditionError(
        "function " + function_name +
        " is defined in the driver executable, which workers cannot load: move it (and its "
        "LUMEN_REMOTE) into a shared library that the driver links");
  }
  return absl::OkStatus();
}

ObjectId CoreWorker::Submit(const internal::TaskOptions& options,
                            std::vector<internal::TaskArg> args) {
  ApiCall call(this);
  if (call.stopped()) return ObjectId();
  TaskId task = NormalTaskId(options_.job_id, CurrentTask(), NextSubmitIndex());
  return BuildAndSubmit(proto::NORMAL_TASK, task, ActorId(), options, std::move(args));
}

ObjectId CoreWorker::BuildAndSubmit(proto::TaskType type, const TaskId& task, const ActorId& actor,
                                    const internal::TaskOptions& options,
                                    std::vector<internal::TaskArg> args) {
  ObjectId result = ReturnObjectId(task, 1);
  refs_.AddOwned(result);
  if (absl::Status ok = CheckCallable(options.function_name); !ok.ok()) {
    return FailedObject(result, ok);
  }
  std::vector<ObjectId> ref_args;
  auto spec = BuildSpec(type, task, options, std::move(args), &ref_args);
  if (!spec.ok()) return FailedObject(result, spec.status());
  bool actor_task = !actor.IsNil();
  if (actor_task) spec->set_actor_id(actor.Binary());
  return SubmitBuilt(std::move(*spec), result, std::move(ref_args), actor_task);
}

ObjectId CoreWorker::SubmitBuilt(proto::TaskSpec spec, const ObjectId& result,
                                 std::vector<ObjectId> ref_args, bool actor_task) {
  if (absl::Status lost = ClusterLost(); !lost.ok()) return FailedObject(result, lost);
  refs_.AddSubmittedRefs(ref_args);
  TaskId task = TaskId::FromBinary(spec.task_id());
  PendingTask pending;
  pending.spec = std::move(spec);
  pending.returns = {result};
  pending.ref_args = std::move(ref_args);
  pending.retries_left = actor_task ? 0 : pending.spec.max_retries();
  auto shared = std::make_shared<PendingTask>(std::move(pending));
  loop_.Post("core_worker.submit", [this, shared, task, actor_task] {
    tasks_->Add(std::move(*shared));
    if (actor_task) {
      actor_submitter_->Submit(task);
    } else {
      submitter_->Submit(task);
    }
  });
  return result;
}

void CoreWorker::HandlePushTask(const proto::PushTaskRequest& request, proto::PushTaskReply* reply,
                                rpc::SendReply send) {
  if (options_.is_driver) {
    send(absl::UnimplementedError("drivers do not run tasks"));
    return;
  }
  SetGpuIds(request.gpu_ids());
  executor_->Enqueue(request, reply, std::move(send));
}

void CoreWorker::HandlePushActorTasks(const proto::PushActorTasksRequest& request,
                                      proto::PushActorTasksReply* reply, rpc::SendReply send) {
  if (options_.is_driver) {
    send(absl::UnimplementedError("drivers host no actors"));
    return;
  }
  executor_->EnqueueActorCalls(request, reply, std::move(send));
}

void CoreWorker::HandleDrainActor(const proto::DrainActorRequest& request,
                                  proto::DrainActorReply* reply, rpc::SendReply send) {
  if (options_.is_driver) {
    send(absl::FailedPreconditionError("drivers host no actors"));
    return;
  }
  auto shared = std::make_shared<rpc::SendReply>(std::move(send));
  executor_->Drain([this, shared] {
    (*shared)(absl::OkStatus());
    // Leave once every reply is out (a kill could cut a call's answer off):
    // a graceful server shutdown waits for them.
    std::thread([this] {
      server_.Shutdown();
      LUMEN_LOG_INFO("actor moved: worker exiting");
      logging::Flush();
      ::_exit(0);
    }).detach();
  });
}

void CoreWorker::HandlePrintWorkerOutput(const proto::PrintWorkerOutputRequest& request,
                                         proto::PrintWorkerOutputReply* reply,
                                         rpc::SendReply send) {
  // A driver shows its tasks' output as Ray's do: each line prefixed with
  // the process and node it came from. LUMEN_LOG_TO_DRIVER=0 turns it off.
  static const bool on = [] {
    const char* env = std::getenv("LUMEN_LOG_TO_DRIVER");
    return env == nullptr || std::string(env) != "0";
  }();
  if (options_.is_driver && on) {
    for (const auto& o : request.outputs()) {
      std::string prefix = "(pid=" + std::to_string(o.pid()) +
                           ", node=" + NodeId::FromBinary(o.node_id()).Short() + ") ";
      std::string out;
      size_t start = 0;
      while (start < o.text().size()) {
        size_t nl = o.text().find('\n', start);
        size_t end = nl == std::string::npos ? o.text().size() : nl;
        out += prefix;
        out.append(o.text(), start, end - start);
        out += '\n';
        start = end + 1;
      }
      std::ostream& to = o.stderr() ? std::cerr : std::cout;
      to << out << std::flush;
    }
  }
  send(absl::OkStatus());
}

void CoreWorker::HandleAddObjectLocation(const proto::AddObjectLocationRequest& request,
                                         proto::AddObjectLocationReply* reply,
                                         rpc::SendReply send) {
  ObjectLocation where{
      NodeId::FromBinary(request.node_id()),
      rpc::JoinHostPort(request.node_manager().host(), request.node_manager().port())};
  reply->set_freed(!refs_.AddLocation(ObjectId::FromBinary(request.object_id()), where));
  send(absl::OkStatus());
}

}  // namespace lumen::worker
