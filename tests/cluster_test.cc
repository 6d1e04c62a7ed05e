// Integration tests of tasks and objects on a real cluster: a GCS and three
// node managers (one CPU each) as separate processes on loopback, with this
// test program as the driver.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "lumen/api.h"
#include "lumen/internal/runtime.h"
#include "nlohmann/json.hpp"
#include "test_tasks.h"
#include "test_util.h"
#include "worker/local_cluster.h"

namespace lumen {
namespace {

using testing::WaitUntil;
using Json = nlohmann::json;
constexpr int64_t kStoreBytes = 256 << 20;

class ClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    worker::LocalClusterOptions options;
    options.nodes.assign(3, worker::LocalNodeOptions{{{"CPU", 1}}, kStoreBytes});
    auto started = testing::StartAndConnect(options);
    ASSERT_TRUE(started.ok()) << started.status();
    cluster_ = started->release();
  }
  static void TearDownTestSuite() {
    Shutdown();
    delete cluster_;
    cluster_ = nullptr;
  }

  static std::map<NodeId, NodeInfo> NodesById() {
    std::map<NodeId, NodeInfo> out;
    auto nodes = Nodes();
    EXPECT_TRUE(nodes.ok()) << nodes.status();
    if (nodes.ok()) {
      for (const auto& n : *nodes) out[n.id] = n;
    }
    return out;
  }

  static worker::LocalCluster* cluster_;
};

worker::LocalCluster* ClusterTest::cluster_ = nullptr;

TEST_F(ClusterTest, TasksRunInWorkerProcessesOfTheCluster) {
  auto pid = Get(Task(test_tasks::Pid).Remote(), 30'000);
  ASSERT_TRUE(pid.ok()) << pid.status();
  EXPECT_NE(*pid, ::getpid());
  std::set<pid_t> node_managers;
  for (size_t i = 0; i < cluster_->num_nodes(); ++i) node_managers.insert(cluster_->node_pid(i));
  EXPECT_TRUE(node_managers.count(testing::ParentOf(*pid)))
      << "worker " << *pid << " is not a child of a node manager";
}

TEST_F(ClusterTest, ValuesAndObjectRefsAsArguments) {
  auto three = Task(test_tasks::Add).Remote(1, 2);
  auto seven = Task(test_tasks::Add).Remote(three, 4);  // a ref as an argument
  auto echoed = Task(test_tasks::Echo).Remote(std::string("hello"));
  EXPECT_EQ(*Get(seven, 30'000), 7);
  EXPECT_EQ(*Get(echoed, 30'000), "hello");
  auto put = Put(40);
  EXPECT_EQ(*Get(Task(test_tasks::Add).Remote(put, 2), 30'000), 42);
}

TEST_F(ClusterTest, SpillsToOtherNodesWhenTheLocalOneIsFull) {
  testing::TempDir dir;
  std::vector<ObjectRef<std::string>> refs;
  // Three one-CPU tasks that only finish once all three run at the same
  // time: possible only if two of them spilled to the other nodes.
  for (int i = 0; i < 3; ++i) {
    refs.push_back(Task(test_tasks::Rendezvous).Remote(dir.path(), 3, 30'000));
  }
  auto nodes = Get(refs, 60'000);
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  std::set<std::string> distinct(nodes->begin(), nodes->end());
  EXPECT_EQ(distinct.size(), 3u);
}

TEST_F(ClusterTest, SpreadAndNodeAffinity) {
  NodeId target = cluster_->node_id(2);
  auto where = Get(Task(test_tasks::NodeOf)
                       .SetSchedulingStrategy(SchedulingStrategy::NodeAffinity(target))
                       .Remote(),
                   30'000);
  ASSERT_TRUE(where.ok()) << where.status();
  EXPECT_EQ(*where, target.Hex());

  std::vector<ObjectRef<std::string>> spread;
  for (int i = 0; i < 6; ++i) {
    spread.push_back(
        Task(test_tasks::NodeOf).SetSchedulingStrategy(SchedulingStrategy::Spread()).Remote());
  }
  auto nodes = Get(spread, 60'000);
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  EXPECT_EQ(std::set<std::string>(nodes->begin(), nodes->end()).size(), 3u)
      << "spread should use every node";
}

TEST_F(ClusterTest, LargeObjectsMoveBetweenNodesIntact) {
  const int n = 8 << 20;  // 32 MiB of uint32
  std::vector<uint32_t> data = test_tasks::MakeData(n, 7);
  uint64_t expected = test_tasks::Checksum(data);
  int64_t pulled_before = NodesById()[cluster_->node_id(0)].bytes_pulled;

  // Driver -> node 2: the task's argument is pulled from the head's store.
  auto ref = Put(data);
  auto remote_sum =
      Get(Task(test_tasks::Checksum)
              .SetSchedulingStrategy(SchedulingStrategy::NodeAffinity(cluster_->node_id(2)))
              .Remote(ref),
          60'000);
  ASSERT_TRUE(remote_sum.ok()) << remote_sum.status();
  EXPECT_EQ(*remote_sum, expected);

  // Node 1 -> driver: a large return value is pulled to the driver's node.
  auto made = Task(test_tasks::MakeData)
                  .SetSchedulingStrategy(SchedulingStrategy::NodeAffinity(cluster_->node_id(1)))
                  .Remote(n, 7);
  auto back = Get(made, 60'000);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == data);
  EXPECT_GE(NodesById()[cluster_->node_id(0)].bytes_pulled - pulled_before, int64_t{n} * 4);
}

TEST_F(ClusterTest, TasksGoWhereTheirDataIs) {
  for (size_t node : {1, 2}) {
    auto data =
        Task(test_tasks::MakeData)
            .SetSchedulingStrategy(SchedulingStrategy::NodeAffinity(cluster_->node_id(node)))
            .Remote(1 << 20, 5);  // 4 MiB: in node's store
    ASSERT_TRUE(Wait({data}, 1, 30'000).ok());
    // Locality is a preference: a node still busy with the task that made the
    // data (its lease is returned just after the result) spills the next task
    // elsewhere, as Ray's does. Wait until the data's node has its CPU back.
    ASSERT_TRUE(WaitUntil([&] {
      return NodesById()[cluster_->node_id(node)].resources_available["CPU"] >= 1;
    })) << "the node that made the data never got its CPU back";
    auto where = Get(Task(test_tasks::NodeOfData).Remote(data), 30'000);  // default strategy
    ASSERT_TRUE(where.ok()) << where.status();
    EXPECT_EQ(*where, cluster_->node_id(node).Hex()) << "the task should run by its data";
  }
}

// The mapping in /proc/self/maps that contains `p`, or "".
std::string MappingOf(const void* p) {
  std::ifstream maps("/proc/self/maps");
  auto addr = reinterpret_cast<uintptr_t>(p);
  for (std::string line; std::getline(maps, line);) {
    uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2 && addr >= lo && addr < hi) return line;
  }
  return "";
}

TEST_F(ClusterTest, LargeArraysAreReadInPlaceFromSharedMemory) {
  std::vector<uint32_t> data = test_tasks::MakeData(4 << 20, 11);
  auto local = GetArray(Put(data), 30'000);
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_TRUE(local->in_shared_memory());
  EXPECT_NE(MappingOf(local->data()).find("/dev/shm/lumen."), std::string::npos)
      << MappingOf(local->data());
  ASSERT_EQ(local->size(), data.size());
  EXPECT_TRUE(std::equal(local->begin(), local->end(), data.begin()));

  // Made on another node: pulled here once, then read in place.
  auto remote =
      GetArray(Task(test_tasks::MakeData)
                   .SetSchedulingStrategy(SchedulingStrategy::NodeAffinity(cluster_->node_id(2)))
                   .Remote(4 << 20, 11),
               60'000);
  ASSERT_TRUE(remote.ok()) << remote.status();
  EXPECT_TRUE(remote->in_shared_memory());
  EXPECT_TRUE(std::equal(remote->begin(), remote->end(), data.begin()));

  auto small = GetArray(Put(std::vector<uint32_t>{1, 2, 3}), 30'000);
  ASSERT_TRUE(small.ok());
  EXPECT_FALSE(small->in_shared_memory());
  EXPECT_EQ(std::vector<uint32_t>(small->begin(), small->end()), (std::vector<uint32_t>{1, 2, 3}));
}

TEST_F(ClusterTest, ObjectsAreFreedWhenTheLastRefGoes) {
  auto used = [] {
    int64_t total = 0;
    for (const auto& [id, n] : NodesById()) total += n.object_store_used;
    return total;
  };
  ASSERT_TRUE(WaitUntil([&] { return used() == 0; })) << "store not empty at start";
  {
    auto a = Put(std::vector<uint32_t>(4 << 20, 1));  // 16 MiB on the head
    auto b = Task(test_tasks::MakeData)
                 .SetSchedulingStrategy(SchedulingStrategy::NodeAffinity(cluster_->node_id(1)))
                 .Remote(4 << 20, 3);
    auto c = Task(test_tasks::Checksum)
                 .SetSchedulingStrategy(SchedulingStrategy::NodeAffinity(cluster_->node_id(2)))
                 .Remote(a);           // copies `a` to node 2
    ASSERT_TRUE(Get(b, 60'000).ok());  // copies `b` to the head
    ASSERT_TRUE(Get(c, 60'000).ok());
    EXPECT_GE(used(), int64_t{4} * (16 << 20));
    auto copy = b;  // a second reference keeps it alive
  }
  EXPECT_TRUE(WaitUntil([&] { return used() == 0; }))
      << "store still holds " << used() << " bytes after the last reference went";
}

TEST_F(ClusterTest, AKilledWorkersTaskIsRetried) {
  testing::TempDir dir;
  auto ref = Task(test_tasks::WaitForRelease).Remote(dir.path());
  auto pids_written = [&] {
    std::vector<pid_t> pids;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
      std::string name = e.path().filename().string();
      if (name.rfind("pid.", 0) == 0) pids.push_back(std::atoi(name.c_str() + 4));
    }
    return pids;
  };
  ASSERT_TRUE(WaitUntil([&] { return pids_written().size() == 1; }));
  pid_t first = pids_written()[0];
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  ASSERT_TRUE(WaitUntil([&] { return pids_written().size() == 2; }))
      << "the task did not run again after its worker was killed";
  std::ofstream(dir.path() + "/release") << "go";
  auto pid = Get(ref, 60'000);
  ASSERT_TRUE(pid.ok()) << pid.status();
  EXPECT_NE(*pid, first);
}

TEST_F(ClusterTest, AUserExceptionReachesGetWithFunctionMessageAndNode) {
  auto r = Get(Task(test_tasks::Throw).Remote(std::string("boom at step 3")), 30'000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnknown);
  std::string msg(r.status().message());
  EXPECT_NE(msg.find("test_tasks::Throw"), std::string::npos) << msg;
  EXPECT_NE(msg.find("boom at step 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("std::runtime_error"), std::string::npos) << msg;
  EXPECT_NE(msg.find("on node"), std::string::npos) << msg;
  // A task that takes the failed result fails the same way.
  auto chained = Get(Task(test_tasks::Add).Remote(Task(test_tasks::Throw).Remote("x"), 1), 30'000);
  ASSERT_FALSE(chained.ok());
  EXPECT_NE(chained.status().message().find("argument 1"), std::string::npos);
}

// The state API keeps tasks after they ran (task events in the GCS): a
// failed one is listed with its error and where it ran, a finished one as
// FINISHED, through `lumen list|get|summary tasks`.
TEST_F(ClusterTest, TheStateApiKeepsFailedTasksWithTheirErrorAndNode) {
  std::string tag = "state-api-" + std::to_string(::getpid());
  ASSERT_FALSE(Get(Task(test_tasks::Throw).Remote(tag), 30'000).ok());
  ASSERT_TRUE(Get(Task(test_tasks::Add).Remote(2, 3), 30'000).ok());
  auto run = [&](const std::string& args, std::string* out) {
    return testing::RunCommand(std::string(LUMEN_CLI_PATH) + " " + args + " --address " +
                                   GetRuntimeContext().gcs_address + " --token " +
                                   internal::CurrentRuntime()->ClusterToken() + " 2>&1",
                               out);
  };
  std::string out;
  Json failed;
  // Events reach the GCS within about a second of the task's end.
  ASSERT_TRUE(WaitUntil([&] {
    if (run("list tasks --filter state=FAILED --json", &out) != 0) return false;
    Json rows = Json::parse(out, nullptr, false);
    for (const auto& r : rows.is_array() ? rows : Json::array()) {
      if (r["error"].get<std::string>().find(tag) != std::string::npos) failed = r;
    }
    return failed.is_object();
  })) << out;
  EXPECT_EQ(failed["name"], "test_tasks::Throw");
  EXPECT_EQ(failed["state"], "FAILED");
  EXPECT_EQ(failed["node_id"].get<std::string>().size(), 2 * NodeId::kSize) << failed.dump();
  EXPECT_GT(failed["pid"].get<int>(), 0);
  EXPECT_GT(failed["ended_ms"].get<int64_t>(), 0);
  ASSERT_EQ(run("get task " + failed["task_id"].get<std::string>(), &out), 0) << out;
  EXPECT_NE(out.find(tag), std::string::npos) << out;
  ASSERT_TRUE(WaitUntil([&] {
    return run("list tasks --filter name=test_tasks::Add --filter state=FINISHED --json", &out) ==
               0 &&
           out.find("FINISHED") != std::string::npos;
  })) << out;
  ASSERT_EQ(run("summary tasks", &out), 0) << out;
  EXPECT_NE(out.find("test_tasks::Throw"), std::string::npos) << out;
  ASSERT_EQ(run("list nodes --filter state=alive --json", &out), 0) << out;
  Json nodes = Json::parse(out, nullptr, false);
  ASSERT_TRUE(nodes.is_array()) << out;
  EXPECT_EQ(nodes.size(), 3u) << out;
  ASSERT_EQ(run("list jobs --json", &out), 0) << out;
  EXPECT_NE(out.find(GetRuntimeContext().job.Hex()), std::string::npos) << out;
  // Bad input: a clear message and a non-zero exit.
  EXPECT_NE(run("list tasks --filter color=red", &out), 0);
  EXPECT_NE(out.find("cannot filter tasks by 'color'"), std::string::npos) << out;
  EXPECT_NE(run("list tasks --filter state=sleeping", &out), 0);
  EXPECT_NE(out.find("PENDING, RUNNING, FINISHED or FAILED"), std::string::npos) << out;
  EXPECT_NE(run("get task 00ff", &out), 0);
  EXPECT_NE(run("get task " + std::string(2 * TaskId::kSize, 'a'), &out), 0);
  EXPECT_NE(out.find("no task"), std::string::npos) << out;
}

TEST_F(ClusterTest, AnInfeasibleTaskFailsAtOnceNamingTheResources) {
  auto start = std::chrono::steady_clock::now();
  auto r =
      Get(Task(test_tasks::Add).SetResource("CPU", 64).SetResource("GPU", 2).Remote(1, 1), 30'000);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  std::string msg(r.status().message());
  EXPECT_NE(msg.find("CPU: 64"), std::string::npos) << msg;
  EXPECT_NE(msg.find("GPU: 2"), std::string::npos) << msg;
  EXPECT_LT(took, std::chrono::seconds(5));
}

TEST_F(ClusterTest, UnknownFunctionsAndTypeMismatchesAreClearErrors) {
  internal::TaskOptions options;
  options.function_name = "test_tasks::NoSuchFunction";
  auto missing = ObjectRef<int>::AdoptId(internal::CurrentRuntime()->Submit(options, {}));
  auto r = Get(missing, 30'000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();
  EXPECT_NE(r.status().message().find("NoSuchFunction"), std::string::npos);

  options.function_name = "test_tasks::Add";
  options.signature = typeid(int(std::string)).name();
  internal::TaskArg arg;
  arg.value = internal::Serialize(std::string("not an int"));
  auto mismatched = ObjectRef<int>::AdoptId(internal::CurrentRuntime()->Submit(options, {arg}));
  auto m = Get(mismatched, 30'000);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << m.status();
  EXPECT_NE(m.status().message().find("int (int, int)"), std::string::npos) << m.status();

  // Right name and signature, wrong bytes for an argument.
  options.signature = typeid(int(int, int)).name();
  auto bad_arg = ObjectRef<int>::AdoptId(internal::CurrentRuntime()->Submit(options, {arg, arg}));
  auto b = Get(bad_arg, 30'000);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("argument 1"), std::string::npos) << b.status();
}

TEST_F(ClusterTest, NestedTasksDoNotDeadlockOnOneCpuNodes) {
  // Three nested tasks hold every CPU and each waits on subtasks (with Get,
  // or Wait then Get): only possible because a worker that waits lends its
  // CPU back.
  for (auto fn : {&test_tasks::NestedSum, &test_tasks::NestedWaitSum}) {
    std::vector<ObjectRef<int>> refs;
    for (int i = 0; i < 3; ++i) refs.push_back(Task(fn).Remote(4));
    auto sums = Get(refs, 60'000);
    ASSERT_TRUE(sums.ok()) << sums.status();
    for (int s : *sums) EXPECT_EQ(s, 12);
  }
}

TEST_F(ClusterTest, WaitSplitsReadyFromUnready) {
  testing::TempDir dir;
  auto fast = Task(test_tasks::Add).Remote(1, 1);
  auto slow = Task(test_tasks::WaitForRelease).Remote(dir.path());
  auto w = Wait({fast, slow}, 1, 30'000);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_EQ(w->ready.size(), 1u);
  EXPECT_EQ(w->ready[0], fast);
  EXPECT_EQ(w->unready.size(), 1u);
  auto none = Wait({slow}, 1, 50);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->ready.empty());
  std::ofstream(dir.path() + "/release") << "go";
  EXPECT_TRUE(Get(slow, 30'000).ok());
  auto timeout = Get(Task(test_tasks::WaitForRelease).Remote(dir.path() + "/nowhere"), 10);
  EXPECT_EQ(timeout.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(ClusterTest, ManyTasksSpreadOverAllNodes) {
  std::vector<ObjectRef<int>> refs;
  for (int i = 0; i < 300; ++i) refs.push_back(Task(test_tasks::Add).Remote(i, 1));
  auto values = Get(refs, 120'000);
  ASSERT_TRUE(values.ok()) << values.status();
  for (int i = 0; i < 300; ++i) ASSERT_EQ((*values)[i], i + 1);
}

TEST(ClusterConnectTest, AnUnreachableClusterIsAClearErrorWithinTheDeadline) {
  Config config;
  config.address = "127.0.0.1:1";
  config.token = "x";
  config.connect_timeout_ms = 2000;
  auto start = std::chrono::steady_clock::now();
  absl::Status s = Init(config);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(15));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("127.0.0.1:1"), std::string::npos) << s;
  EXPECT_FALSE(IsInitialized());
}

}  // namespace
}  // namespace lumen
