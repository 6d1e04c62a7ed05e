// Integration tests of placement groups on a real cluster: a GCS and three
// node managers (two CPUs each) as processes on loopback, this program the
// driver. Every test removes what it made, so the next finds six free CPUs.
#include <filesystem>
#include <set>

#include "gtest/gtest.h"
#include "lumen/api.h"
#include "test_tasks.h"
#include "test_util.h"
#include "worker/local_cluster.h"

namespace lumen {
namespace {

using test_tasks::Counter;
using testing::WaitUntil;

const Bundle kOneCpu = {{"CPU", 1}};
const Bundle kTwoCpus = {{"CPU", 2}};

class PlacementGroupTest : public ::testing::Test {
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
  void TearDown() override {
    // Every CPU is free again on every node (the reports take a moment).
    EXPECT_TRUE(WaitUntil([] { return FreeCpus() == 6; })) << FreeCpus() << " CPUs free";
  }

  static double FreeCpus() {
    auto nodes = Nodes();
    if (!nodes.ok()) return -1;
    double free = 0;
    for (const auto& n : *nodes) {
      auto it = n.resources_available.find("CPU");
      if (n.alive && it != n.resources_available.end()) free += it->second;
    }
    return free;
  }
  static PlacementGroup Created(const PlacementGroupOptions& options) {
    auto pg = CreatePlacementGroup(options);
    EXPECT_TRUE(pg.ok()) << pg.status();
    if (!pg.ok()) return PlacementGroup();
    absl::Status waited = pg->Wait(30'000);
    EXPECT_TRUE(waited.ok()) << waited;
    return *pg;
  }
  static std::vector<NodeId> NodesOf(const PlacementGroup& pg) {
    auto info = pg.Info();
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? info->bundle_nodes : std::vector<NodeId>();
  }
  static size_t Distinct(const std::vector<NodeId>& nodes) {
    return std::set<NodeId>(nodes.begin(), nodes.end()).size();
  }

  static worker::LocalCluster* cluster_;
};
worker::LocalCluster* PlacementGroupTest::cluster_ = nullptr;

TEST_F(PlacementGroupTest, StrategiesDecideWhereBundlesGo) {
  PlacementGroup strict_spread =
      Created({{kOneCpu, kOneCpu, kOneCpu}, PlacementStrategy::kStrictSpread});
  EXPECT_EQ(Distinct(NodesOf(strict_spread)), 3u);
  ASSERT_TRUE(RemovePlacementGroup(strict_spread).ok());

  PlacementGroup strict_pack = Created({{kOneCpu, kOneCpu}, PlacementStrategy::kStrictPack});
  auto nodes = NodesOf(strict_pack);
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_EQ(Distinct(nodes), 1u);
  EXPECT_FALSE(nodes[0].IsNil());
  ASSERT_TRUE(RemovePlacementGroup(strict_pack).ok());

  // From an idle cluster again (the nodes have reported the returns).
  ASSERT_TRUE(WaitUntil([] { return FreeCpus() == 6; })) << FreeCpus() << " CPUs free";
  PlacementGroup pack = Created({{kOneCpu, kOneCpu}, PlacementStrategy::kPack});
  EXPECT_EQ(Distinct(NodesOf(pack)), 1u) << "pack fills one node while it can";
  PlacementGroup spread = Created({{kOneCpu, kOneCpu}, PlacementStrategy::kSpread});
  EXPECT_EQ(Distinct(NodesOf(spread)), 2u) << "spread uses as many nodes as it can";
  EXPECT_TRUE(WaitUntil([] { return FreeCpus() == 2; }))
      << "the groups hold four CPUs: " << FreeCpus() << " free";
  ASSERT_TRUE(RemovePlacementGroup(pack).ok());
  ASSERT_TRUE(RemovePlacementGroup(spread).ok());
}

TEST_F(PlacementGroupTest, TasksAndActorsRunInTheirBundleOnItsNode) {
  PlacementGroup pg = Created({{kOneCpu, kTwoCpus}, PlacementStrategy::kStrictSpread});
  auto nodes = NodesOf(pg);
  ASSERT_EQ(nodes.size(), 2u);

  std::vector<ObjectRef<std::string>> in_bundle1;
  for (int i = 0; i < 20; ++i) {
    in_bundle1.push_back(Task(test_tasks::NodeOf).SetPlacementGroup(pg, 1).Remote());
  }
  auto where = Get(in_bundle1, 60'000);
  ASSERT_TRUE(where.ok()) << where.status();
  for (const auto& n : *where) EXPECT_EQ(n, nodes[1].Hex());

  auto actor = Actor(Counter::Create).SetResource("CPU", 1).SetPlacementGroup(pg, 0).Remote(1);
  auto actor_node = Get(actor.Task(&Counter::Node).Remote(), 60'000);
  ASSERT_TRUE(actor_node.ok()) << actor_node.status();
  EXPECT_EQ(*actor_node, nodes[0].Hex());
  // Bundle 0 is full now: a task asking for it waits, one for any bundle
  // finds room in bundle 1.
  auto waits = Task(test_tasks::NodeOf).SetPlacementGroup(pg, 0).Remote();
  auto any = Get(Task(test_tasks::NodeOf).SetPlacementGroup(pg).Remote(), 60'000);
  ASSERT_TRUE(any.ok()) << any.status();
  EXPECT_EQ(*any, nodes[1].Hex());
  auto ready = Wait({waits}, 1, 300);
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->ready.size(), 0u) << "bundle 0's CPU is the actor's";
  ASSERT_TRUE(Kill(actor).ok());
  auto ran = Get(waits, 60'000);
  ASSERT_TRUE(ran.ok()) << ran.status();
  EXPECT_EQ(*ran, nodes[0].Hex());
  ASSERT_TRUE(RemovePlacementGroup(pg).ok());
}

TEST_F(PlacementGroupTest, RemovingAGroupKillsWhatRunsInItAndReturnsItsResources) {
  PlacementGroup pg = Created({{kTwoCpus, kTwoCpus, kTwoCpus}, PlacementStrategy::kSpread});
  EXPECT_TRUE(WaitUntil([] { return FreeCpus() == 0; })) << FreeCpus();
  auto actor = Actor(Counter::Create).SetResource("CPU", 1).SetPlacementGroup(pg, 2).Remote(7);
  ASSERT_TRUE(actor.Ready(60'000).ok());
  testing::TempDir dir;
  auto held =
      Task(test_tasks::WaitForRelease).SetPlacementGroup(pg, 0).SetMaxRetries(0).Remote(dir.path());
  ASSERT_TRUE(WaitUntil([&] { return !std::filesystem::is_empty(dir.path()); })) << "the task runs";
  auto plain = Task(test_tasks::Add).Remote(1, 2);  // no CPU outside the group
  ASSERT_TRUE(RemovePlacementGroup(pg).ok());

  auto call = Get(actor.Task(&Counter::Value).Remote(), 30'000);
  ASSERT_FALSE(call.ok());
  EXPECT_NE(call.status().message().find("placement group"), std::string::npos) << call.status();
  auto task = Get(held, 30'000);
  ASSERT_FALSE(task.ok()) << "its worker was killed";
  auto sum = Get(plain, 30'000);
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(*sum, 3) << "the CPUs came back to the nodes";
  EXPECT_EQ(RemovePlacementGroup(pg).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(pg.Wait(1000).code(), absl::StatusCode::kNotFound);
  auto late = Get(Task(test_tasks::Add).SetPlacementGroup(pg).Remote(1, 1), 30'000);
  ASSERT_FALSE(late.ok()) << "a task for a removed group fails, it does not wait forever";
  EXPECT_NE(late.status().message().find("removed"), std::string::npos) << late.status();
}

TEST_F(PlacementGroupTest, AGroupWaitsForRoomAndOneThatCanNeverFitFailsSayingWhy) {
  PlacementGroup blocker = Created({{kTwoCpus}, PlacementStrategy::kStrictPack});
  auto waiting = CreatePlacementGroup({{kTwoCpus, kTwoCpus, kTwoCpus}, PlacementStrategy::kSpread});
  ASSERT_TRUE(waiting.ok());
  EXPECT_EQ(waiting->Wait(300).code(), absl::StatusCode::kDeadlineExceeded);
  auto info = waiting->Info();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, PlacementGroupState::kPending);
  for (const NodeId& n : info->bundle_nodes) EXPECT_TRUE(n.IsNil()) << "nothing half made";
  EXPECT_TRUE(WaitUntil([] { return FreeCpus() == 4; })) << "only the blocker holds CPUs";
  ASSERT_TRUE(RemovePlacementGroup(blocker).ok());
  ASSERT_TRUE(waiting->Wait(30'000).ok()) << "created once the room came back";
  ASSERT_TRUE(RemovePlacementGroup(*waiting).ok());

  auto never = CreatePlacementGroup(
      {{kOneCpu, kOneCpu, kOneCpu, kOneCpu}, PlacementStrategy::kStrictSpread});
  ASSERT_TRUE(never.ok());
  absl::Status s = never->Wait(30'000);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("STRICT_SPREAD"), std::string::npos) << s;
  auto gpu = CreatePlacementGroup({{{{"GPU", 1}}}});
  ASSERT_TRUE(gpu.ok());
  s = gpu->Wait(30'000);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("GPU"), std::string::npos) << s;
  ASSERT_TRUE(RemovePlacementGroup(*never).ok());
  ASSERT_TRUE(RemovePlacementGroup(*gpu).ok());
}

TEST_F(PlacementGroupTest, NamesFindGroupsAndBadRequestsSayWhatIsWrong) {
  PlacementGroupOptions named{{kOneCpu}, PlacementStrategy::kPack, "trainers"};
  PlacementGroup pg = Created(named);
  auto found = GetPlacementGroup("trainers");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->ID(), pg.ID());
  auto twin = CreatePlacementGroup(named);
  EXPECT_EQ(twin.status().code(), absl::StatusCode::kAlreadyExists) << twin.status();
  EXPECT_EQ(GetPlacementGroup("nobody").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(RemovePlacementGroup(pg).ok());
  EXPECT_EQ(GetPlacementGroup("trainers").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(CreatePlacementGroup(named).ok()) << "the name is free again";
  ASSERT_TRUE(RemovePlacementGroup(*GetPlacementGroup("trainers")).ok());

  auto none = CreatePlacementGroup({});
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  auto empty = CreatePlacementGroup({{kOneCpu, {}}});
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(empty.status().message().find("bundle 1"), std::string::npos) << empty.status();
  auto negative = CreatePlacementGroup({{{{"CPU", -1}}}});
  EXPECT_EQ(negative.status().code(), absl::StatusCode::kInvalidArgument) << negative.status();
}

}  // namespace
}  // namespace lumen
