// Integration tests of losing the GCS: with its tables in a real
// redis-server (started here) a killed GCS is started again and the
// cluster carries on; with tables in memory every client is told the
// cluster is gone. GCS, node managers and workers are real processes.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

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

bool Alive(pid_t pid) { return ProcessAlive(pid); }  // (a zombie is not)

using testing::RedisServer;

class GcsRestartTest : public ::testing::Test {
 protected:
  void StartCluster(const std::string& storage) {
    worker::LocalClusterOptions options;
    options.nodes.assign(2, worker::LocalNodeOptions{{{"CPU", 2}}, 64 << 20});
    options.gcs_storage = storage;
    options.node_timeout_ms = 2000;
    options.heartbeat_period_ms = 100;
    auto started = testing::StartAndConnect(options);
    ASSERT_TRUE(started.ok()) << started.status();
    cluster_ = std::move(*started);
  }
  void TearDown() override {
    Shutdown();
    cluster_.reset();
  }

  std::unique_ptr<worker::LocalCluster> cluster_;
};

TEST_F(GcsRestartTest, WithRedisStorageAKilledGcsComesBackAndTheClusterCarriesOn) {
  RedisServer redis;
  ASSERT_TRUE(redis.Ready()) << "redis-server did not start";
  ASSERT_NO_FATAL_FAILURE(StartCluster(redis.url()));
  testing::TempDir dir;

  auto counter = Actor(Counter::Create).SetName("survivor").SetMaxRestarts(1).Remote(10);
  auto first = Get(counter.Task(&Counter::Add).Remote(1), 30'000);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, 11);
  auto group = CreatePlacementGroup({{{{"CPU", 1}}}, PlacementStrategy::kPack, "kept"});
  ASSERT_TRUE(group.ok()) << group.status();
  ASSERT_TRUE(group->Wait(30'000).ok());
  auto running = Task(test_tasks::WaitForRelease).Remote(dir.path());
  ASSERT_TRUE(WaitUntil([&] { return testing::HasFileStartingWith(dir.path(), "pid."); }))
      << "the long task never started";
  std::vector<pid_t> nodes = {cluster_->node_pid(0), cluster_->node_pid(1)};

  cluster_->KillGcs();
  // Calls go straight to the actor: they work while the GCS is down.
  auto during = Get(counter.Task(&Counter::Add).Remote(1), 30'000);
  ASSERT_TRUE(during.ok()) << during.status();
  EXPECT_EQ(*during, 12);
  ASSERT_TRUE(cluster_->RestartGcs().ok());

  // The running task and the actor were not disturbed.
  std::ofstream(dir.path() + "/release") << "go";
  auto ran = Get(running, 60'000);
  ASSERT_TRUE(ran.ok()) << ran.status();
  auto after = Get(counter.Task(&Counter::Add).Remote(1), 30'000);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(*after, 13) << "the actor's state survives (it was not restarted)";
  auto restarted = Get(counter.Task(&Counter::Restarted).Remote(), 30'000);
  ASSERT_TRUE(restarted.ok());
  EXPECT_FALSE(*restarted);

  // Names are still found; the nodes are the same processes, still alive.
  auto found = GetActor<Counter>("survivor");
  ASSERT_TRUE(found.ok()) << "the named actor is not found after the restart: " << found.status();
  auto via_name = Get(found->Task(&Counter::Value).Remote(), 30'000);
  ASSERT_TRUE(via_name.ok()) << via_name.status();
  EXPECT_EQ(*via_name, 13);
  auto kept = GetPlacementGroup("kept");
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->ID(), group->ID());
  EXPECT_TRUE(kept->Wait(10'000).ok());
  for (pid_t pid : nodes) EXPECT_TRUE(Alive(pid)) << "a node manager exited";
  auto listed = Nodes();
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 2u);
  for (const auto& n : *listed) EXPECT_TRUE(n.alive) << n.id.Hex();

  // New work is accepted: tasks, actors and groups.
  auto sum = Get(Task(test_tasks::Add).Remote(2, 3), 30'000);
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(*sum, 5);
  auto fresh = Actor(Counter::Create).Remote(7);
  auto fresh_value = Get(fresh.Task(&Counter::Add).Remote(1), 30'000);
  ASSERT_TRUE(fresh_value.ok()) << fresh_value.status();
  EXPECT_EQ(*fresh_value, 8);
  auto another = CreatePlacementGroup({{{{"CPU", 1}}}});
  ASSERT_TRUE(another.ok()) << another.status();
  EXPECT_TRUE(another->Wait(30'000).ok());
}

TEST_F(GcsRestartTest, WithMemoryStorageLosingTheGcsTellsEveryClientTheClusterIsGone) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(""));
  testing::TempDir dir;
  auto running = Task(test_tasks::WaitForRelease).Remote(dir.path());
  ASSERT_TRUE(WaitUntil([&] { return testing::HasFileStartingWith(dir.path(), "pid."); }));
  std::vector<pid_t> nodes = {cluster_->node_pid(0), cluster_->node_pid(1)};
  cluster_->KillGcs();

  // The waiting Get ends with the reason, and so does new work.
  auto lost = Get(running, 60'000);
  ASSERT_FALSE(lost.ok());
  EXPECT_NE(lost.status().message().find("cluster is gone"), std::string::npos) << lost.status();
  auto later = Get(Task(test_tasks::Add).Remote(1, 2), 10'000);
  ASSERT_FALSE(later.ok());
  EXPECT_NE(later.status().message().find("cluster is gone"), std::string::npos) << later.status();
  // Node managers leave (taking their workers with them).
  for (pid_t pid : nodes) {
    EXPECT_TRUE(WaitUntil([&] { return !Alive(pid); }, 30'000)) << "node manager " << pid;
  }
}

TEST_F(GcsRestartTest, AGcsStartedAgainInMemoryIsSeenAsAnotherCluster) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(""));
  std::vector<pid_t> nodes = {cluster_->node_pid(0), cluster_->node_pid(1)};
  ASSERT_TRUE(cluster_->RestartGcs().ok());
  for (pid_t pid : nodes) {
    EXPECT_TRUE(WaitUntil([&] { return !Alive(pid); }, 30'000)) << "node manager " << pid;
  }
  std::ifstream log(cluster_->session_dir() + "/logs/node-1.err");
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("restarted without this cluster's state"), std::string::npos) << text;
}

}  // namespace
}  // namespace lumen
