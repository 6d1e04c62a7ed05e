// Integration tests of actors on a real cluster: a GCS and three node
// managers (two CPUs each) as processes on loopback, this program the driver.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "lumen/api.h"
#include "test_tasks.h"
#include "test_util.h"
#include "worker/local_cluster.h"

namespace lumen {
namespace {

using test_tasks::Counter;
using testing::WaitUntil;

class ActorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    worker::LocalClusterOptions options;
    options.nodes.assign(3, worker::LocalNodeOptions{{{"CPU", 2}}, 64 << 20});
    auto started = testing::StartAndConnect(options);
    ASSERT_TRUE(started.ok()) << started.status();
    cluster_ = started->release();
  }
  static void TearDownTestSuite() {
    Shutdown();
    delete cluster_;
  }
  // Joins the cluster again (after a Shutdown).
  static absl::Status Connect() {
    Config config;
    config.address = cluster_->gcs_address();
    config.token = cluster_->token();
    return Init(config);
  }
  static worker::LocalCluster* cluster_;
};
worker::LocalCluster* ActorTest::cluster_ = nullptr;

TEST_F(ActorTest, CallsRunInOrderOnOneInstanceInAnotherProcess) {
  auto c = Actor(Counter::Create).Remote(10);
  ASSERT_TRUE(c.Ready(30'000).ok());
  std::vector<ObjectRef<int>> sums;
  for (int i = 1; i <= 200; ++i) sums.push_back(c.Task(&Counter::Add).Remote(i));
  auto values = Get(sums, 30'000);
  ASSERT_TRUE(values.ok()) << values.status();
  int expected = 10;
  for (int i = 1; i <= 200; ++i) {
    expected += i;
    ASSERT_EQ((*values)[i - 1], expected) << "call " << i << " ran out of order";
  }
  EXPECT_NE(*Get(c.Task(&Counter::Pid).Remote(), 30'000), ::getpid());
  EXPECT_FALSE(*Get(c.Task(&Counter::Restarted).Remote(), 30'000));
}

TEST_F(ActorTest, NamedActorsAreFoundByNameAndNamesAreUnique) {
  auto c = Actor(Counter::Create).SetName("named", "tests").Remote(5);
  ASSERT_TRUE(c.Ready(30'000).ok());
  auto same = GetActor<Counter>("named", "tests");
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->ID(), c.ID());
  EXPECT_EQ(*Get(same->Task(&Counter::Add).Remote(1), 30'000), 6);
  EXPECT_EQ(GetActor<Counter>("named").status().code(), absl::StatusCode::kNotFound)
      << "names are per namespace";
  EXPECT_EQ(GetActor<test_tasks::Broken>("named", "tests").status().code(),
            absl::StatusCode::kInvalidArgument);
  auto twin = Actor(Counter::Create).SetName("named", "tests").Remote(0);
  absl::Status taken = twin.Ready(30'000);
  EXPECT_FALSE(taken.ok());
  EXPECT_NE(taken.message().find("already exists"), std::string::npos) << taken;
  auto call = Get(twin.Task(&Counter::Value).Remote(), 30'000);
  EXPECT_FALSE(call.ok());
}

TEST_F(ActorTest, HandlesArePassedToTasks) {
  auto c = Actor(Counter::Create).Remote(0);
  std::vector<ObjectRef<int>> refs;
  for (int i = 0; i < 5; ++i) refs.push_back(Task(test_tasks::AddThrough).Remote(c, 2));
  ASSERT_TRUE(Get(refs, 30'000).ok());
  EXPECT_EQ(*Get(c.Task(&Counter::Value).Remote(), 30'000), 10);
}

TEST_F(ActorTest, KillEndsTheActorAndItsCallsFailNamingIt) {
  auto c = Actor(Counter::Create).SetName("doomed").SetMaxRestarts(5).Remote(0);
  int pid = *Get(c.Task(&Counter::Pid).Remote(), 30'000);
  ASSERT_TRUE(Kill(c).ok());
  auto after = Get(c.Task(&Counter::Add).Remote(1), 30'000);
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.status().code(), absl::StatusCode::kUnavailable);
  std::string msg(after.status().message());
  EXPECT_NE(msg.find("Counter"), std::string::npos) << msg;
  EXPECT_NE(msg.find("doomed"), std::string::npos) << msg;
  EXPECT_NE(msg.find("killed"), std::string::npos) << msg;
  EXPECT_TRUE(WaitUntil([&] { return !ProcessAlive(pid); })) << "its worker still runs";
  EXPECT_EQ(GetActor<Counter>("doomed").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ActorTest, AKilledWorkerRestartsTheActorAndCallsResumeOrFailAsConfigured) {
  testing::TempDir dir;
  auto c = Actor(Counter::Create).SetMaxRestarts(1).Remote(100);
  int pid = *Get(c.Task(&Counter::Pid).Remote(), 30'000);
  EXPECT_EQ(*Get(c.Task(&Counter::Add).Remote(1), 30'000), 101);
  auto held = c.Task(&Counter::Hold).Remote(dir.path());  // in flight when it dies
  ASSERT_TRUE(WaitUntil([&] {
    return std::filesystem::exists(dir.path()) && !std::filesystem::is_empty(dir.path());
  }));
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  auto lost = Get(held, 30'000);
  ASSERT_FALSE(lost.ok()) << "max_task_retries=0: the call in flight fails";
  EXPECT_NE(lost.status().message().find("died"), std::string::npos) << lost.status();
  // The actor comes back (from its factory: state starts over) and says so.
  EXPECT_EQ(*Get(c.Task(&Counter::Add).Remote(1), 30'000), 101);
  EXPECT_TRUE(*Get(c.Task(&Counter::Restarted).Remote(), 30'000));
  int pid2 = *Get(c.Task(&Counter::Pid).Remote(), 30'000);
  EXPECT_NE(pid2, pid);
  // No restarts left: the next death is final.
  ASSERT_EQ(::kill(pid2, SIGKILL), 0);
  absl::Status dead;
  EXPECT_TRUE(WaitUntil([&] {
    dead = c.Ready(1000);
    return dead.message().find("max_restarts=1 used up") != std::string::npos;
  })) << dead;
  EXPECT_FALSE(Get(c.Task(&Counter::Value).Remote(), 30'000).ok());
}

TEST_F(ActorTest, CallsWithRetriesLeftAreSentAgainAfterARestart) {
  testing::TempDir dir;
  auto c = Actor(Counter::Create).SetMaxRestarts(1).SetMaxTaskRetries(1).Remote(7);
  int pid = *Get(c.Task(&Counter::Pid).Remote(), 30'000);
  auto held = c.Task(&Counter::Hold).Remote(dir.path());
  ASSERT_TRUE(WaitUntil([&] { return !std::filesystem::is_empty(dir.path()); }));
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  std::ofstream(dir.path() + "/release") << "go";
  auto value = Get(held, 30'000);
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, 7) << "it ran again on the restarted actor";
}

TEST_F(ActorTest, AFactoryThatThrowsMakesADeadActorWithTheReason) {
  auto b = Actor(test_tasks::Broken::Create).SetMaxRestarts(3).Remote(std::string("no disk"));
  absl::Status s = b.Ready(30'000);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no disk"), std::string::npos) << s;
  EXPECT_NE(s.message().find("invalid_argument"), std::string::npos) << s;
  EXPECT_FALSE(Get(b.Task(&test_tasks::Broken::Nothing).Remote(), 30'000).ok());
}

TEST_F(ActorTest, ConcurrentActorsRunCallsAtOnce) {
  testing::TempDir dir;
  auto c = Actor(Counter::Create).SetMaxConcurrency(4).Remote(0);
  std::vector<ObjectRef<int>> met;
  for (int i = 0; i < 4; ++i) met.push_back(c.Task(&Counter::Meet).Remote(dir.path(), 4));
  auto values = Get(met, 60'000);
  ASSERT_TRUE(values.ok()) << values.status();
}

TEST_F(ActorTest, ResourcesPlaceActorsAndImpossibleOnesDieSayingWhy) {
  auto big = Actor(Counter::Create).SetResource("CPU", 64).Remote(0);
  absl::Status s = big.Ready(30'000);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("CPU: 64"), std::string::npos) << s;
  std::vector<ActorHandle<Counter>> placed;
  for (int i = 0; i < 3; ++i) {
    placed.push_back(Actor(Counter::Create)
                         .SetResource("CPU", 2)  // a whole node each
                         .Remote(0));
  }
  std::set<std::string> nodes;
  for (auto& a : placed) {
    auto node = Get(a.Task(&Counter::Node).Remote(), 60'000);
    ASSERT_TRUE(node.ok()) << node.status();
    nodes.insert(*node);
  }
  EXPECT_EQ(nodes.size(), 3u) << "each holds a whole node";
  for (auto& a : placed) ASSERT_TRUE(Kill(a).ok());
}

TEST_F(ActorTest, DetachedActorsOutliveTheirJobAndOthersDieWithIt) {
  auto kept = Actor(Counter::Create).SetName("kept").SetDetached().Remote(1);
  auto gone = Actor(Counter::Create).SetName("gone").Remote(1);
  EXPECT_EQ(*Get(kept.Task(&Counter::Add).Remote(1), 30'000), 2);
  int gone_pid = *Get(gone.Task(&Counter::Pid).Remote(), 30'000);
  Shutdown();
  ASSERT_TRUE(Connect().ok());
  EXPECT_TRUE(WaitUntil([&] { return !ProcessAlive(gone_pid); }))
      << "the job's actor still runs after its driver shut down";
  EXPECT_EQ(GetActor<Counter>("gone").status().code(), absl::StatusCode::kNotFound);
  auto again = GetActor<Counter>("kept");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*Get(again->Task(&Counter::Add).Remote(1), 30'000), 3) << "state kept";
  ASSERT_TRUE(Kill(*again).ok());
}

}  // namespace
}  // namespace lumen
