// Integration tests of surviving failures on a real cluster: a GCS and node
// managers as processes on loopback (this program the driver), one of them
// SIGKILLed in the middle of work. Each test starts a cluster of its own.
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <thread>

#include "common/process.h"
#include "gtest/gtest.h"
#include "lumen/api.h"
#include "test_tasks.h"
#include "test_util.h"
#include "worker/local_cluster.h"

namespace lumen {
namespace {

using test_tasks::Counter;
using testing::WaitUntil;
constexpr int kWords = 1 << 18;  // 1 MiB of data: stored, not inlined

class NodeLossTest : public ::testing::Test {
 protected:
  void SetUp() override {
    worker::LocalClusterOptions options;
    // The head (this driver's node) and two nodes that can host the work.
    options.nodes = {worker::LocalNodeOptions{{{"CPU", 1}}, 64 << 20},
                     worker::LocalNodeOptions{{{"CPU", 2}, {"spare", 1}}, 64 << 20},
                     worker::LocalNodeOptions{{{"CPU", 2}, {"spare", 1}}, 64 << 20}};
    options.node_timeout_ms = 1000;
    options.heartbeat_period_ms = 100;
    auto started = testing::StartAndConnect(options);
    ASSERT_TRUE(started.ok()) << started.status();
    cluster_ = std::move(*started);
  }
  void TearDown() override {
    Shutdown();
    cluster_.reset();
  }
  SchedulingStrategy On(size_t node) {
    return SchedulingStrategy::NodeAffinity(cluster_->node_id(node), /*soft=*/true);
  }
  bool NodeDead(const NodeId& id) {
    auto nodes = Nodes();
    if (!nodes.ok()) return false;
    for (const auto& n : *nodes) {
      if (n.id == id) return !n.alive;
    }
    return false;
  }

  std::unique_ptr<worker::LocalCluster> cluster_;
};

TEST_F(NodeLossTest, ActorsRestartElsewhereTasksRetryAndLostObjectsAreMadeAgain) {
  testing::TempDir dir;
  const NodeId victim = cluster_->node_id(1);
  auto counter = Actor(Counter::Create)
                     .SetMaxRestarts(2)
                     .SetMaxTaskRetries(2)
                     .SetResource("spare", 1)
                     .SetSchedulingStrategy(On(1))
                     .Remote(100);
  auto first = Get(counter.Task(&Counter::Add).Remote(5), 30'000);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, 105);
  auto where = Get(counter.Task(&Counter::Node).Remote(), 30'000);
  ASSERT_TRUE(where.ok()) << where.status();
  ASSERT_EQ(*where, victim.Hex());

  // Values made on the doomed node and read by nobody yet: their only copy
  // is there. One may be run again, one may not.
  std::vector<ObjectRef<std::vector<uint32_t>>> made;
  for (int i = 0; i < 3; ++i) {
    made.push_back(Task(test_tasks::MakeData).SetSchedulingStrategy(On(1)).Remote(kWords, i));
  }
  // (Pinned hard: a soft pin may run it elsewhere while the node is busy.)
  auto fragile = Task(test_tasks::MakeData)
                     .SetMaxRetries(0)
                     .SetSchedulingStrategy(SchedulingStrategy::NodeAffinity(victim))
                     .Remote(kWords, 99);
  std::vector<ObjectRef<std::vector<uint32_t>>> all = made;
  all.push_back(fragile);
  auto ready = Wait(all, static_cast<int>(all.size()), 60'000);
  ASSERT_TRUE(ready.ok()) << ready.status();
  ASSERT_EQ(ready->ready.size(), all.size()) << "the data was not made in time";
  auto made_on = Get(Task(test_tasks::NodeOfData).SetSchedulingStrategy(On(1)).Remote(made[0]));
  ASSERT_TRUE(made_on.ok()) << made_on.status();

  // A task running there when the node dies.
  auto running = Task(test_tasks::WaitForRelease).SetSchedulingStrategy(On(1)).Remote(dir.path());
  ASSERT_TRUE(WaitUntil([&] { return testing::HasFileStartingWith(dir.path(), "pid."); }))
      << "the long task never started";

  cluster_->KillNode(1);
  ASSERT_TRUE(WaitUntil([&] { return NodeDead(victim); }, 30'000))
      << "the GCS never declared the killed node dead";

  // The actor answers again from the other node, started afresh from its
  // constructor arguments (its state was in the dead process).
  auto again = Get(counter.Task(&Counter::Add).Remote(1), 60'000);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, 101);
  auto moved = Get(counter.Task(&Counter::Node).Remote(), 30'000);
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(*moved, cluster_->node_id(2).Hex());
  auto restarted = Get(counter.Task(&Counter::Restarted).Remote(), 30'000);
  ASSERT_TRUE(restarted.ok() && *restarted);

  // The task that was running is run again elsewhere.
  std::ofstream(dir.path() + "/release") << "go";
  auto ran = Get(running, 60'000);
  ASSERT_TRUE(ran.ok()) << ran.status();

  // Lost values are made again by running their tasks again.
  for (int i = 0; i < 3; ++i) {
    auto data = Get(made[i], 60'000);
    ASSERT_TRUE(data.ok()) << "object " << i << ": " << data.status();
    EXPECT_EQ(*data, test_tasks::MakeData(kWords, i)) << "object " << i << " differs";
  }
  // ... except the one whose task may not run again: a clear error.
  auto lost = Get(fragile, 60'000);
  ASSERT_FALSE(lost.ok());
  EXPECT_TRUE(absl::IsDataLoss(lost.status())) << lost.status();
  EXPECT_NE(lost.status().message().find("no retries left"), std::string::npos) << lost.status();
  EXPECT_NE(lost.status().message().find(victim.Short()), std::string::npos) << lost.status();

  // New work is placed on the nodes that are left.
  auto after = Get(Task(test_tasks::NodeOf).SetSchedulingStrategy(On(1)).Remote(), 30'000);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_NE(*after, victim.Hex());
}

TEST_F(NodeLossTest, AnActorWithoutRestartsLeftFailsItsCallsNamingTheNode) {
  const NodeId victim = cluster_->node_id(2);
  auto once = Actor(Counter::Create).SetResource("spare", 1).SetSchedulingStrategy(On(2)).Remote(1);
  auto where = Get(once.Task(&Counter::Node).Remote(), 30'000);
  ASSERT_TRUE(where.ok()) << where.status();
  ASSERT_EQ(*where, victim.Hex());
  auto pid = Get(once.Task(&Counter::Pid).Remote(), 30'000);
  ASSERT_TRUE(pid.ok()) << pid.status();
  // The machine is lost: its workers with it (left alone, a worker follows
  // its node manager only moments later, and a call could still slip in).
  cluster_->KillNode(2);
  ::kill(*pid, SIGKILL);
  auto call = Get(once.Task(&Counter::Add).Remote(1), 60'000);
  ASSERT_FALSE(call.ok());
  EXPECT_NE(call.status().message().find(once.ID().Short()), std::string::npos) << call.status();
  ASSERT_TRUE(WaitUntil([&] { return NodeDead(victim); }, 30'000));
  absl::Status dead = once.Ready(30'000);
  ASSERT_FALSE(dead.ok());
  EXPECT_NE(dead.message().find("died"), std::string::npos) << dead;
}

TEST_F(NodeLossTest, DrainingANodeMovesItsActorsWithoutFailingCallsAndLetsItLeave) {
  const NodeId drained = cluster_->node_id(1);
  const pid_t drained_pid = cluster_->node_pid(1);
  // No restarts and no call retries: only a move that fails nothing passes.
  auto counter =
      Actor(Counter::Create).SetResource("spare", 1).SetSchedulingStrategy(On(1)).Remote(0);
  auto where = Get(counter.Task(&Counter::Node).Remote(), 30'000);
  ASSERT_TRUE(where.ok()) << where.status();
  ASSERT_EQ(*where, drained.Hex());

  // Calls keep coming while the node drains.
  std::atomic<bool> done{false};
  std::vector<ObjectRef<int>> calls;
  std::mutex mu;
  std::thread caller([&] {
    while (!done) {
      auto r = counter.Task(&Counter::Add).Remote(1);
      std::lock_guard<std::mutex> lock(mu);
      calls.push_back(r);
      if (calls.size() % 20 == 0) (void)Get(r, 30'000);  // (keep a bounded backlog)
    }
  });
  ASSERT_TRUE(WaitUntil([&] {
    std::lock_guard<std::mutex> lock(mu);
    return calls.size() > 50;
  }));
  std::string out;
  int rc = testing::RunCommand(
      std::string(LUMEN_CLI_PATH) + " drain " + drained.Hex().substr(0, 8) + " --address " +
          cluster_->gcs_address() + " --token " + cluster_->token() + " --timeout-s 60 2>&1",
      &out);
  done = true;
  caller.join();
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("left the cluster (drained)"), std::string::npos) << out;

  for (size_t i = 0; i < calls.size(); ++i) {
    auto r = Get(calls[i], 60'000);
    ASSERT_TRUE(r.ok()) << "call " << i << " of " << calls.size() << ": " << r.status();
  }
  auto moved = Get(counter.Task(&Counter::Node).Remote(), 30'000);
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(*moved, cluster_->node_id(2).Hex());
  EXPECT_TRUE(WaitUntil([&] { return !ProcessAlive(drained_pid); }, 30'000))
      << "the drained node manager did not exit";
  EXPECT_TRUE(NodeDead(drained));
  auto after = Get(Task(test_tasks::NodeOf).SetSchedulingStrategy(On(1)).Remote(), 30'000);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_NE(*after, drained.Hex());
}

}  // namespace
}  // namespace lumen
