// Unit tests of the node manager's parts: the shared-memory store and the
// lease manager (with a worker pool of real, idle processes).
#include <signal.h>

#include <filesystem>
#include <future>
#include <optional>

#include "common/file_util.h"
#include "common/ids.h"
#include "gcs/gcs_server.h"
#include "gtest/gtest.h"
#include "node/code_cache.h"
#include "node/lease_manager.h"
#include "node/node_manager.h"
#include "node/object_store.h"
#include "node/shm.h"

namespace lumen::node {
namespace {

std::string TestPrefix() { return StorePrefix(::getpid(), NodeId::FromRandom()); }

TEST(LogRotationTest, BigWorkerLogsAreCopiedAsideAndEmptied) {
  char tmpl[] = "/tmp/lumen-logs-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  ASSERT_TRUE(WriteFileAtomic(dir + "/worker-abc.out", std::string(200, 'a')).ok());
  ASSERT_TRUE(WriteFileAtomic(dir + "/worker-abc.err", "small").ok());
  ASSERT_TRUE(WriteFileAtomic(dir + "/job-x.log", std::string(150, 'j')).ok());
  ASSERT_TRUE(WriteFileAtomic(dir + "/gcs.err", std::string(500, 'g')).ok());  // not ours
  EXPECT_EQ(RotateLogFiles(dir, 100), 2);
  EXPECT_EQ(*ReadFile(dir + "/worker-abc.out"), "");
  EXPECT_EQ(*ReadFile(dir + "/worker-abc.out.1"), std::string(200, 'a'));
  EXPECT_EQ(*ReadFile(dir + "/worker-abc.err"), "small");
  EXPECT_EQ(ReadFile(dir + "/job-x.log")->size(), 0u);
  EXPECT_EQ(ReadFile(dir + "/gcs.err")->size(), 500u);
  EXPECT_EQ(RotateLogFiles(dir, 100), 0);  // the .1 copies are left alone

  auto tail = ReadFileRange(dir + "/gcs.err", -10, 1 << 20);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(tail->data, std::string(10, 'g'));
  EXPECT_EQ(tail->next_offset, 500);
  auto past = ReadFileRange(dir + "/gcs.err", 900, 10);
  ASSERT_TRUE(past.ok());
  EXPECT_EQ(past->data, "");
  EXPECT_EQ(past->next_offset, 500);
  EXPECT_FALSE(ReadFileRange(dir + "/none", 0, 10).ok());
  std::filesystem::remove_all(dir);
}

TEST(ShmTest, CreateMapReadAndUnlink) {
  std::string name = ShmName(TestPrefix(), ObjectId::FromRandom());
  {
    auto w = CreateShmObject(name, 10);
    ASSERT_TRUE(w.ok()) << w.status();
    std::memcpy((*w)->mutable_data(), "0123456789", 10);
  }
  EXPECT_EQ(CreateShmObject(name, 10).status().code(), absl::StatusCode::kAlreadyExists);
  auto r = OpenShmObject(name);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::string((*r)->data(), 10), "0123456789");
  EXPECT_EQ(*ReadShmRange(name, 3, 4), "3456");
  UnlinkShmObject(name);
  // A mapping made before the unlink stays readable.
  EXPECT_EQ(std::string((*r)->data(), 3), "012");
  EXPECT_EQ(OpenShmObject(name).status().code(), absl::StatusCode::kNotFound);
}

TEST(ObjectStoreTest, SealChecksSizeAndCapacityAndFreeReturnsSpace) {
  LocalObjectStore store(TestPrefix(), 100);
  ObjectId a = ObjectId::FromRandom(), b = ObjectId::FromRandom(), c = ObjectId::FromRandom();
  auto write = [&](const ObjectId& id, size_t size) {
    std::string temp = ShmTempName(store.prefix(), id);
    EXPECT_TRUE(CreateShmObject(temp, size).ok());
    return temp;
  };
  EXPECT_EQ(store.Seal(a, 61, {}, write(a, 60)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Seal(a, 60, {}, "elsewhere").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(OpenShmObject(store.NameOf(a)).ok()) << "not readable before it is sealed";
  std::string temp = write(a, 60);
  ASSERT_TRUE(store.Seal(a, 60, {}, temp).ok());
  EXPECT_TRUE(store.Contains(a));
  EXPECT_TRUE(OpenShmObject(store.NameOf(a)).ok());
  EXPECT_FALSE(OpenShmObject(temp).ok()) << "renamed into place";
  EXPECT_EQ(store.used(), 60);
  std::string again = write(a, 60);  // a retry made it again: the first copy stays
  ASSERT_TRUE(store.Seal(a, 60, {}, again).ok());
  EXPECT_FALSE(OpenShmObject(again).ok());
  EXPECT_EQ(store.used(), 60);
  std::string big = write(b, 50);
  absl::Status full = store.Seal(b, 50, {}, big);
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("--object-store-memory"), std::string::npos);
  EXPECT_FALSE(OpenShmObject(big).ok()) << "a refused object's file is removed";
  EXPECT_EQ(store.ReadChunk(c, 0, 1).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.ReadChunk(a, 0, 1000)->size(), 60u);
  store.Free({a, c});
  EXPECT_EQ(store.used(), 0);
  EXPECT_EQ(store.num_objects(), 0);
  EXPECT_FALSE(OpenShmObject(store.NameOf(a)).ok());
}

TEST(ShmTest, FilesOfAJobAreFoundByName) {
  std::string prefix = TestPrefix();
  TaskId t1 = TaskId::FromRandom(), t2 = TaskId::FromRandom();
  std::memcpy(t1.mutable_data() + 20, JobId::FromInt(1).data(), 4);
  std::memcpy(t2.mutable_data() + 20, JobId::FromInt(2).data(), 4);
  ObjectId mine = PutObjectId(t1, 1), other = PutObjectId(t2, 1);
  ASSERT_TRUE(CreateShmObject(ShmName(prefix, mine), 8).ok());
  ASSERT_TRUE(CreateShmObject(ShmTempName(prefix, mine), 8).ok());
  ASSERT_TRUE(CreateShmObject(ShmName(prefix, other), 8).ok());
  EXPECT_EQ(RemoveShmObjectsOfJob(prefix, JobId::FromInt(1)), 2);
  EXPECT_TRUE(OpenShmObject(ShmName(prefix, other)).ok());
  EXPECT_EQ(RemoveShmObjectsWithPrefix(prefix), 1);
}

TEST(ObjectStoreTest, PullsReserveRoomAndAbortCleanly) {
  LocalObjectStore store(TestPrefix(), 100);
  ObjectId a = ObjectId::FromRandom();
  auto mapping = store.CreateForPull(a, 80);
  ASSERT_TRUE(mapping.ok());
  EXPECT_FALSE(store.Contains(a)) << "not readable until committed";
  EXPECT_EQ(store.CreateForPull(ObjectId::FromRandom(), 30).status().code(),
            absl::StatusCode::kResourceExhausted);
  store.AbortPull(a);
  EXPECT_EQ(store.used(), 0);
  ASSERT_TRUE(store.CreateForPull(a, 80).ok());
  store.CommitPull(a, {});
  EXPECT_TRUE(store.Contains(a));
  store.Clear();
}

// Starts a real process that sleeps, and remembers the worker ids asked for.
class IdleProcessLauncher : public ProcessLauncher {
 public:
  absl::StatusOr<std::unique_ptr<Process>> Launch(const ProcessSpec& spec) override {
    for (const auto& a : spec.argv) {
      if (a.rfind("--worker-id=", 0) == 0) started.push_back(WorkerId::FromHex(a.substr(12)));
    }
    ProcessSpec idle;
    idle.argv = {"/bin/sleep", "300"};
    return real_.Launch(idle);
  }
  std::vector<WorkerId> started;

 private:
  PosixProcessLauncher real_;
};

class FakeCode : public CodeResolver {
 public:
  void Resolve(const JobId&, Done done) override { done(std::vector<std::string>{}); }
  void Forget(const JobId&) override {}
};

struct Answer {
  std::optional<absl::Status> status;
  proto::RequestWorkerLeaseReply reply;
  rpc::SendReply send() {
    return [this](absl::Status s) { status = s; };
  }
};

class LeaseManagerTest : public ::testing::Test {
 protected:
  LeaseManagerTest()
      : pool_(WorkerPoolConfig{.worker_path = "/bin/false", .host = "127.0.0.1"}, &launcher_,
              &clock_),
        leases_(self_, Total(), &view_, &pool_, &code_, "127.0.0.1", [this] { changes_++; }) {
    view_.Upsert(NodeView{self_, {Total(), Total()}, "127.0.0.1:1", true});
    ResourceSet remote = *ResourceSet::FromMap({{"CPU", 4}});
    view_.Upsert(NodeView{remote_, {remote, remote}, "127.0.0.1:2", true});
  }
  ~LeaseManagerTest() override { pool_.Shutdown(); }
  static ResourceSet Total() { return *ResourceSet::FromMap({{"CPU", 2}}); }

  std::unique_ptr<Answer> Request(double cpus, bool grant_or_reject = false, uint32_t job = 1,
                                  const std::string& caller_node = "",
                                  const std::string& request_id = "") {
    auto a = std::make_unique<Answer>();
    proto::RequestWorkerLeaseRequest req;
    req.set_request_id(request_id);
    req.mutable_spec()->set_job_id(JobId::FromInt(job).Binary());
    req.mutable_spec()->mutable_caller()->set_node_id(caller_node);
    (*req.mutable_spec()->mutable_resources())["CPU"] = cpus;
    req.set_grant_or_reject(grant_or_reject);
    leases_.HandleRequestWorkerLease(req, &a->reply, a->send());
    return a;
  }
  // A request for `demand` in bundle `bundle` of `group` (as a task in it asks).
  std::unique_ptr<Answer> RequestInGroup(double cpus, const PlacementGroupId& group, int bundle) {
    auto a = std::make_unique<Answer>();
    proto::RequestWorkerLeaseRequest req;
    req.mutable_spec()->set_job_id(JobId::FromInt(1).Binary());
    req.mutable_spec()->set_placement_group_id(group.Binary());
    ResourceSet demand = GroupDemand(*ResourceSet::FromMap({{"CPU", cpus}}), group, bundle);
    for (const auto& [name, amount] : demand.ToMap()) {
      (*req.mutable_spec()->mutable_resources())[name] = amount;
    }
    leases_.HandleRequestWorkerLease(req, &a->reply, a->send());
    return a;
  }
  void RegisterLastWorker(int port) {
    proto::RegisterWorkerRequest req;
    req.set_worker_id(launcher_.started.back().Binary());
    req.set_port(port);
    proto::RegisterWorkerReply reply;
    pool_.HandleRegisterWorker(req, &reply, [](absl::Status s) { EXPECT_TRUE(s.ok()); });
  }
  void Return(const Answer& a, bool failed = false) {
    proto::ReturnWorkerRequest req;
    req.set_lease_id(a.reply.lease_id());
    req.set_tasks_executed(5);
    req.set_worker_failed(failed);
    proto::ReturnWorkerReply reply;
    leases_.HandleReturnWorker(req, &reply, [](absl::Status) {});
  }

  FakeClock clock_;
  IdleProcessLauncher launcher_;
  FakeCode code_;
  NodeId self_ = NodeId::FromRandom();
  NodeId remote_ = NodeId::FromRandom();
  ClusterView view_;
  WorkerPool pool_;
  LeaseManager leases_;
  int changes_ = 0;
};

TEST_F(LeaseManagerTest, GrantsLocallyThenSpillsThenQueuesThenReuses) {
  auto a = Request(1);
  EXPECT_FALSE(a->status) << "answered only once a worker registered";
  ASSERT_EQ(launcher_.started.size(), 1u);
  RegisterLastWorker(1001);
  ASSERT_TRUE(a->status && a->status->ok());
  EXPECT_EQ(a->reply.worker().port(), 1001);

  auto b = Request(1);
  RegisterLastWorker(1002);
  ASSERT_TRUE(b->status);
  EXPECT_EQ(leases_.Available().Get("CPU"), 0);
  EXPECT_GT(changes_, 0);

  auto c = Request(1);  // local full, remote has room
  ASSERT_TRUE(c->status);
  EXPECT_TRUE(c->reply.has_spillback());
  EXPECT_EQ(c->reply.spillback().port(), 2);

  auto d = Request(1, /*grant_or_reject=*/true);  // spilled here, no room: rejected
  ASSERT_TRUE(d->status);
  EXPECT_TRUE(d->reply.rejected());

  view_.SetAvailable(remote_, ResourceSet());  // the remote is full too
  auto e = Request(1);
  EXPECT_FALSE(e->status) << "queued until resources free up";
  EXPECT_EQ(leases_.NumQueued(), 1u);

  Return(*a);  // a's worker goes back to the pool and straight to e
  ASSERT_TRUE(e->status);
  EXPECT_EQ(e->reply.worker().port(), 1001);
  EXPECT_EQ(launcher_.started.size(), 2u) << "the worker was reused";
  EXPECT_EQ(leases_.stats().tasks_executed, 5);
}

// A request sent again (its first answer lost on the way) gets the first
// one's answer: one lease, one worker, whether it was still pending or not.
TEST_F(LeaseManagerTest, ARequestSentAgainGetsTheFirstAnswerNotASecondLease) {
  auto first = Request(1, false, 1, "", "req-1");
  auto again = Request(1, false, 1, "", "req-1");  // while the first is pending
  EXPECT_FALSE(first->status);
  EXPECT_FALSE(again->status);
  ASSERT_EQ(launcher_.started.size(), 1u) << "one worker for the one request";
  RegisterLastWorker(1001);
  ASSERT_TRUE(first->status && first->status->ok());
  ASSERT_TRUE(again->status && again->status->ok());
  EXPECT_EQ(again->reply.lease_id(), first->reply.lease_id());
  auto late = Request(1, false, 1, "", "req-1");  // after it was answered
  ASSERT_TRUE(late->status && late->status->ok());
  EXPECT_EQ(late->reply.lease_id(), first->reply.lease_id());
  EXPECT_EQ(leases_.NumLeases(), 1u);
  EXPECT_EQ(leases_.Available().Get("CPU"), 1);
  auto other = Request(1, false, 1, "", "req-2");  // a new request is a new lease
  RegisterLastWorker(1002);
  ASSERT_TRUE(other->status && other->status->ok());
  EXPECT_NE(other->reply.lease_id(), first->reply.lease_id());
  EXPECT_EQ(leases_.NumLeases(), 2u);
}

// GPUs are leased by index (for the worker's CUDA_VISIBLE_DEVICES): whole
// GPUs to whole-GPU leases, fractions packed onto one GPU, and an index is
// free again when its lease ends.
TEST_F(LeaseManagerTest, GpuLeasesGetTheirOwnGpuIdsBackWhenTheyEnd) {
  ResourceSet total = *ResourceSet::FromMap({{"CPU", 8}, {"GPU", 2}});
  view_.Upsert(NodeView{self_, {total, total}, "127.0.0.1:1", true});
  LeaseManager gpus(self_, total, &view_, &pool_, &code_, "127.0.0.1", [] {});
  int port = 2000;
  auto request = [&](double gpu) {
    auto a = std::make_unique<Answer>();
    proto::RequestWorkerLeaseRequest req;
    req.mutable_spec()->set_job_id(JobId::FromInt(1).Binary());
    (*req.mutable_spec()->mutable_resources())["CPU"] = 1;
    if (gpu > 0) (*req.mutable_spec()->mutable_resources())["GPU"] = gpu;
    size_t started = launcher_.started.size();
    gpus.HandleRequestWorkerLease(req, &a->reply, a->send());
    if (launcher_.started.size() > started) RegisterLastWorker(++port);
    EXPECT_TRUE(a->status && a->status->ok());
    return a;
  };
  auto ids = [](const Answer& a) {
    return std::vector<int>(a.reply.gpu_ids().begin(), a.reply.gpu_ids().end());
  };
  auto give_back = [&](const Answer& a) {
    proto::ReturnWorkerRequest req;
    req.set_lease_id(a.reply.lease_id());
    proto::ReturnWorkerReply reply;
    gpus.HandleReturnWorker(req, &reply, [](absl::Status) {});
  };
  auto whole = request(1);
  EXPECT_EQ(ids(*whole), std::vector<int>{0});
  auto half = request(0.5);
  EXPECT_EQ(ids(*half), std::vector<int>{1});
  auto other_half = request(0.5);
  EXPECT_EQ(ids(*other_half), std::vector<int>{1}) << "fractions share a GPU";
  EXPECT_TRUE(ids(*request(0)).empty()) << "no GPU asked, none given";
  give_back(*whole);
  auto again = request(1);
  EXPECT_EQ(ids(*again), std::vector<int>{0}) << "GPU 0 came back with its lease";
  give_back(*again);
  give_back(*half);
  give_back(*other_half);
  auto both = request(2);
  EXPECT_EQ(ids(*both), (std::vector<int>{0, 1}));
  gpus.Shutdown();
}

TEST_F(LeaseManagerTest, InfeasibleAndInvalidRequestsFailAtOnce) {
  auto big = Request(64);
  ASSERT_TRUE(big->status);
  EXPECT_EQ(big->reply.error().code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_NE(big->reply.error().message().find("CPU: 64"), std::string::npos);
  auto negative = Request(-1);
  ASSERT_TRUE(negative->status);
  EXPECT_EQ(negative->reply.error().code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(launcher_.started.empty());
}

TEST_F(LeaseManagerTest, ABlockedWorkerLendsItsCpuAndAFailedOneIsNotReused) {
  view_.SetAvailable(remote_, ResourceSet());
  auto a = Request(2);
  RegisterLastWorker(1001);
  ASSERT_TRUE(a->status);
  auto b = Request(2);
  EXPECT_FALSE(b->status);
  proto::WorkerBlockedRequest blocked;
  blocked.set_worker_id(a->reply.worker().worker_id());
  blocked.set_blocked(true);
  proto::WorkerBlockedReply r;
  leases_.HandleWorkerBlocked(blocked, &r, [](absl::Status) {});
  RegisterLastWorker(1002);  // b got the lent CPUs and a new worker
  ASSERT_TRUE(b->status);
  EXPECT_EQ(b->reply.worker().port(), 1002);

  Return(*b, /*failed=*/true);
  blocked.set_blocked(false);
  leases_.HandleWorkerBlocked(blocked, &r, [](absl::Status) {});
  Return(*a);
  EXPECT_EQ(leases_.Available().Get("CPU"), 2);
  EXPECT_EQ(pool_.NumWorkers(), 1u) << "the failed worker was stopped";
}

TEST_F(LeaseManagerTest, ADeadWorkersLeaseEndsAndAJobsLeasesEndWithIt) {
  auto a = Request(1);
  RegisterLastWorker(1001);
  ASSERT_TRUE(a->status);
  Worker* w = pool_.Find(WorkerId::FromBinary(a->reply.worker().worker_id()));
  ASSERT_NE(w, nullptr);
  leases_.OnWorkerExit(w, "killed by signal 9");
  EXPECT_EQ(leases_.NumLeases(), 0u);
  EXPECT_EQ(leases_.Available().Get("CPU"), 2);

  view_.SetAvailable(remote_, ResourceSet());
  auto b = Request(2);
  RegisterLastWorker(1002);
  auto queued = Request(1);
  EXPECT_FALSE(queued->status);
  leases_.OnJobFinished(JobId::FromInt(1));
  ASSERT_TRUE(queued->status);
  EXPECT_EQ(queued->reply.error().code(), static_cast<int>(absl::StatusCode::kCancelled));
  EXPECT_EQ(leases_.NumLeases(), 0u);
}

TEST_F(LeaseManagerTest, AJobThatEndsWhileItsWorkerStartsGetsNothingAndKeepsNothing) {
  auto a = Request(2);
  EXPECT_FALSE(a->status);  // its worker is starting
  EXPECT_EQ(leases_.Available().Get("CPU"), 0);
  leases_.OnJobFinished(JobId::FromInt(1));
  pool_.KillJobWorkers(JobId::FromInt(1));
  ASSERT_TRUE(a->status);
  EXPECT_EQ(a->reply.error().code(), static_cast<int>(absl::StatusCode::kCancelled));
  EXPECT_EQ(leases_.Available().Get("CPU"), 2) << "the resources came back";
  auto late = Request(1);
  ASSERT_TRUE(late->status);
  EXPECT_EQ(late->reply.error().code(), static_cast<int>(absl::StatusCode::kCancelled));
  EXPECT_NE(late->reply.error().message().find("finished"), std::string::npos);
}

TEST_F(LeaseManagerTest, LeasesOfACallerOnADeadNodeEnd) {
  NodeId far = NodeId::FromRandom();
  auto a = Request(1, false, 1, far.Binary());
  RegisterLastWorker(1001);
  ASSERT_TRUE(a->status);
  view_.SetAvailable(remote_, ResourceSet());
  auto queued = Request(2, false, 1, far.Binary());
  EXPECT_FALSE(queued->status);
  leases_.OnNodeDead(far);
  EXPECT_EQ(leases_.NumLeases(), 0u);
  ASSERT_TRUE(queued->status);
  EXPECT_EQ(queued->reply.error().code(), static_cast<int>(absl::StatusCode::kCancelled));
  EXPECT_EQ(leases_.Available().Get("CPU"), 2);
}

TEST_F(LeaseManagerTest, BundlesArePreparedAllOrNoneCommittedUsedAndReturned) {
  view_.SetAvailable(remote_, ResourceSet());
  PlacementGroupId g = PlacementGroupId::FromRandom();
  ResourceSet one = *ResourceSet::FromMap({{"CPU", 1}});
  EXPECT_FALSE(leases_.PrepareBundles(g, {{0, one}, {1, one}, {2, one}})) << "3 CPUs of 2";
  EXPECT_EQ(leases_.Available().Get("CPU"), 2) << "a failed prepare takes nothing";
  ASSERT_TRUE(leases_.PrepareBundles(g, {{0, one}, {1, one}}));
  EXPECT_TRUE(leases_.PrepareBundles(g, {{0, one}, {1, one}})) << "a resent prepare";
  EXPECT_EQ(leases_.Available().Get("CPU"), 0);

  auto early = RequestInGroup(1, g, 1);
  EXPECT_FALSE(early->status) << "waits for the commit, not infeasible";
  leases_.CommitBundles(g);
  EXPECT_EQ(leases_.total().Get(GroupResourceName("CPU", g, 1)), 1);
  EXPECT_EQ(leases_.total().Get(GroupResourceName("CPU", g, -1)), 2);
  RegisterLastWorker(1001);
  ASSERT_TRUE(early->status && early->status->ok());
  EXPECT_EQ(early->reply.worker().port(), 1001);
  auto plain = Request(1);
  EXPECT_FALSE(plain->status) << "the node's CPUs are the group's now";

  leases_.ReturnBundles(g, {0});  // bundle 1's lease stays
  EXPECT_EQ(leases_.NumLeases(), 1u);
  EXPECT_EQ(leases_.total().Get(GroupResourceName("CPU", g, 0)), 0);
  RegisterLastWorker(1002);
  ASSERT_TRUE(plain->status) << "bundle 0's CPU went back to the node";

  auto waiting = RequestInGroup(1, g, 1);
  EXPECT_FALSE(waiting->status);
  leases_.OnGroupRemoved(g);
  EXPECT_EQ(leases_.NumLeases(), 1u) << "the group's lease ended; the plain one stays";
  ASSERT_TRUE(waiting->status);
  EXPECT_EQ(waiting->reply.error().code(), static_cast<int>(absl::StatusCode::kCancelled));
  EXPECT_EQ(leases_.total().Get("CPU"), 2);
  auto late = RequestInGroup(1, g, -1);
  ASSERT_TRUE(late->status) << "a removed group fails at once";
  EXPECT_NE(late->reply.error().message().find("removed"), std::string::npos);
  EXPECT_FALSE(leases_.PrepareBundles(g, {{0, one}})) << "a removed group is not prepared again";
}

TEST_F(LeaseManagerTest, CpusComeBackOnlyWhenTheLastBlockedThreadResumes) {
  view_.SetAvailable(remote_, ResourceSet());
  auto a = Request(2);
  RegisterLastWorker(1001);
  ASSERT_TRUE(a->status);
  proto::WorkerBlockedRequest req;
  req.set_worker_id(a->reply.worker().worker_id());
  proto::WorkerBlockedReply r;
  auto notify = [&](bool blocked) {
    req.set_blocked(blocked);
    leases_.HandleWorkerBlocked(req, &r, [](absl::Status) {});
  };
  notify(true);
  notify(true);  // a second thread of the same task waits too
  EXPECT_EQ(leases_.Available().Get("CPU"), 2);
  notify(false);
  EXPECT_EQ(leases_.Available().Get("CPU"), 2) << "one thread still waits";
  notify(false);
  EXPECT_EQ(leases_.Available().Get("CPU"), 0);
}

TEST(WorkerPoolTest, AJobIsNotStarvedOfStartsByAnother) {
  FakeClock clock;
  IdleProcessLauncher launcher;
  WorkerPool pool(WorkerPoolConfig{.worker_path = "/bin/false", .max_starting = 1}, &launcher,
                  &clock);
  int served = 0;
  auto count = [&](absl::StatusOr<Worker*> w) { served += w.ok(); };
  pool.PopWorker(JobId::FromInt(1), {}, count);
  pool.PopWorker(JobId::FromInt(2), {}, count);
  ASSERT_EQ(launcher.started.size(), 1u) << "one start at a time";
  proto::RegisterWorkerRequest req;
  req.set_worker_id(launcher.started[0].Binary());
  proto::RegisterWorkerReply reply;
  pool.HandleRegisterWorker(req, &reply, [](absl::Status) {});
  EXPECT_EQ(served, 1);
  ASSERT_EQ(launcher.started.size(), 2u) << "the freed start slot went to job 2";
  req.set_worker_id(launcher.started[1].Binary());
  pool.HandleRegisterWorker(req, &reply, [](absl::Status) {});
  EXPECT_EQ(served, 2);
  pool.Shutdown();
}

// The code cache fetches a job's files from a real GCS and keeps them by
// digest; what is already on disk is used only when it matches its digest.
TEST(CodeCacheTest, ReplacesAFileThatDoesNotMatchItsDigestAndRefusesBadDigests) {
  gcs::GcsServer server(gcs::GcsConfig{.port = 0, .token = "t"});
  ASSERT_TRUE(server.Start().ok());
  rpc::GcsClient client("127.0.0.1:" + std::to_string(server.port()), "t", nullptr);
  const std::string code = "the real library bytes";
  const std::string digest = Sha256Hex(code);
  proto::KvPutRequest put;
  put.set_ns(rpc::kCodeKvNamespace);
  put.set_key(digest);
  put.set_value(code);
  ASSERT_TRUE(rpc::CallSync<proto::KvPutReply>([&](auto cb) { client.KvPut(put, cb); }).ok());
  auto add_job = [&](const std::string& file_digest) {
    proto::AddJobRequest add;
    proto::CodeFile* f = add.mutable_job()->add_code();
    f->set_name("libapp.so");
    f->set_digest(file_digest);
    auto job = rpc::CallSync<proto::AddJobReply>([&](auto cb) { client.AddJob(add, cb); });
    EXPECT_TRUE(job.ok()) << job.status();
    return JobId::FromBinary(job->job_id());
  };
  std::string dir = "/tmp/lumen_code_cache_test_" + RandomHex(8);
  // Someone left another file where this digest's file goes.
  ASSERT_TRUE(MakeDirs(dir + "/" + digest).ok());
  ASSERT_TRUE(WriteFileAtomic(dir + "/" + digest + "/libapp.so", "planted").ok());
  CodeCache cache(&client, dir);
  auto resolve = [&](const JobId& job) {
    std::promise<absl::StatusOr<std::vector<std::string>>> p;
    cache.Resolve(job, [&](absl::StatusOr<std::vector<std::string>> r) { p.set_value(r); });
    return p.get_future().get();
  };
  auto paths = resolve(add_job(digest));
  ASSERT_TRUE(paths.ok()) << paths.status();
  ASSERT_EQ(paths->size(), 1u);
  EXPECT_EQ(*ReadFile((*paths)[0]), code) << "the planted file was replaced";
  auto bad = resolve(add_job("../../../tmp"));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << bad.status();
  EXPECT_NE(bad.status().message().find("digest"), std::string::npos);
  RemoveAll(dir);
  server.Stop();
}

}  // namespace
}  // namespace lumen::node
