// Integration tests of the embedded default (Init() with no address starts a
// private local cluster) and of how the API treats misuse.
#include <unistd.h>

#include <iostream>

#include "gtest/gtest.h"
#include "lumen/api.h"
#include "test_tasks.h"
#include "test_util.h"
#include "worker/local_cluster.h"

namespace lumen {
namespace {

TEST(EmbeddedTest, InitStartsAPrivateClusterAndShutdownLeavesNoProcess) {
  ::unsetenv("LUMEN_ADDRESS");
  Config config;
  config.local_nodes = 2;
  config.local_node_resources = {{"CPU", 1}};
  config.local_object_store_memory = 64 << 20;
  ASSERT_TRUE(Init(config).ok());
  EXPECT_TRUE(IsInitialized());
  std::vector<ObjectRef<int>> refs;
  for (int i = 0; i < 4; ++i) refs.push_back(Task(test_tasks::Pid).Remote());
  auto pids = Get(refs, 30'000);
  ASSERT_TRUE(pids.ok()) << pids.status();
  auto nodes = Nodes();
  ASSERT_TRUE(nodes.ok());
  EXPECT_EQ(nodes->size(), 2u);

  // GCS, two node managers and their workers all descend from this process.
  std::set<pid_t> started = testing::Descendants(::getpid());
  EXPECT_GE(started.size(), 4u);
  for (int pid : *pids) EXPECT_TRUE(started.count(pid)) << "worker " << pid;

  Shutdown();
  EXPECT_FALSE(IsInitialized());
  EXPECT_TRUE(testing::WaitUntil([&] {
    for (pid_t p : started) {
      if (testing::ParentOf(p) > 0) return false;
    }
    return true;
  })) << "processes left after Shutdown";
}

TEST(EmbeddedTest, MisuseGetsClearErrors) {
  ASSERT_FALSE(IsInitialized());
  auto before = Task(test_tasks::Add).Remote(1, 2);
  EXPECT_TRUE(before.IsNil());
  auto got = Get(before);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(got.status().message().find("Init"), std::string::npos);

  Config config;
  config.local_node_resources = {{"CPU", 1}};
  config.local_object_store_memory = 64 << 20;
  ASSERT_TRUE(Init(config).ok());
  absl::Status twice = Init(config);
  EXPECT_EQ(twice.code(), absl::StatusCode::kFailedPrecondition);
  auto nil = Get(ObjectRef<int>());
  EXPECT_EQ(nil.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Wait({}, 1).status().code(), absl::StatusCode::kInvalidArgument);
  auto bad = Get(Task(test_tasks::Add).SetResource("CPU", -1).Remote(1, 1), 10'000);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << bad.status();
  Shutdown();
  Shutdown();  // twice is fine
}

TEST(EmbeddedTest, ACallWithoutTheClusterTokenIsRefused) {
  worker::LocalClusterOptions options;
  options.nodes = {worker::LocalNodeOptions{{{"CPU", 1}}, 64 << 20}};
  auto cluster = worker::LocalCluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  Config config;
  config.address = (*cluster)->gcs_address();
  config.connect_timeout_ms = 2000;
  for (std::string token : {std::string("wrong-token"), (*cluster)->token() + "x"}) {
    config.token = token;
    absl::Status s = Init(config);
    EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << s;
    EXPECT_NE(s.message().find("token"), std::string::npos) << s;
    EXPECT_FALSE(IsInitialized());
  }
  config.token = (*cluster)->token();
  ASSERT_TRUE(Init(config).ok());
  EXPECT_EQ(*Get(Task(test_tasks::Add).Remote(2, 3), 30'000), 5);
  Shutdown();
}

TEST(NodeLossTest, AKilledNodeIsDeclaredDeadWithinTheTimeoutAndGetsNoMoreWork) {
  worker::LocalClusterOptions options;  // default node timeout: 4 s
  options.nodes.assign(2, worker::LocalNodeOptions{{{"CPU", 1}}, 64 << 20});
  auto cluster = worker::LocalCluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  Config config;
  config.address = (*cluster)->gcs_address();
  config.token = (*cluster)->token();
  ASSERT_TRUE(Init(config).ok());
  NodeId victim = (*cluster)->node_id(1);
  auto alive = [&](const NodeId& id) {
    auto nodes = Nodes();
    if (!nodes.ok()) return true;
    for (const auto& n : *nodes) {
      if (n.id == id) return n.alive;
    }
    return true;
  };
  ASSERT_TRUE(alive(victim));
  auto killed_at = std::chrono::steady_clock::now();
  (*cluster)->KillNode(1);
  EXPECT_TRUE(testing::WaitUntil([&] { return !alive(victim); }, 5'500))
      << "the dead node was not declared dead within 5.5 s";
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - killed_at)
                  .count();
  std::cout << "node declared dead " << took << " ms after SIGKILL\n";
  for (int i = 0; i < 4; ++i) {
    auto where =
        Get(Task(test_tasks::NodeOf).SetSchedulingStrategy(SchedulingStrategy::Spread()).Remote(),
            30'000);
    ASSERT_TRUE(where.ok()) << where.status();
    EXPECT_NE(*where, victim.Hex());
  }
  auto pinned = Get(Task(test_tasks::NodeOf)
                        .SetSchedulingStrategy(SchedulingStrategy::NodeAffinity(victim))
                        .Remote(),
                    30'000);
  EXPECT_EQ(pinned.status().code(), absl::StatusCode::kFailedPrecondition) << pinned.status();
  EXPECT_NE(pinned.status().message().find("dead"), std::string::npos) << pinned.status();
  Shutdown();
}

}  // namespace
}  // namespace lumen
