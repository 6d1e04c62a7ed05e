#include "scheduling/policy.h"

#include "gtest/gtest.h"

namespace lumen {
namespace {

ResourceSet R(std::map<std::string, double> m) { return *ResourceSet::FromMap(m); }

class PolicyTest : public ::testing::Test {
 protected:
  NodeId AddNode(std::map<std::string, double> total, std::map<std::string, double> available) {
    NodeId id = NodeId::FromRandom();
    view_.Upsert(NodeView{id, {R(total), R(available)}, "h:1", true});
    return id;
  }
  Placement Place(const std::string& policy, std::map<std::string, double> demand,
                  NodeId target = NodeId(), bool soft = false) {
    PlacementRequest r;
    r.demand = R(demand);
    r.policy = policy;
    r.target = target;
    r.soft = soft;
    return scheduler_.Place(view_, local_, r);
  }
  ClusterView view_;
  Scheduler scheduler_;
  NodeId local_;
};

TEST_F(PolicyTest, HybridPrefersTheLocalNodeWhileItHasRoom) {
  local_ = AddNode({{"CPU", 4}}, {{"CPU", 1}});
  AddNode({{"CPU", 8}}, {{"CPU", 8}});
  EXPECT_EQ(Place("hybrid", {{"CPU", 1}}).node, local_);
}

TEST_F(PolicyTest, HybridSpillsToALessUsedNodeWithRoom) {
  local_ = AddNode({{"CPU", 4}}, {{"CPU", 0}});
  NodeId busy = AddNode({{"CPU", 4}}, {{"CPU", 1}});
  NodeId idle = AddNode({{"CPU", 4}}, {{"CPU", 4}});
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Place("hybrid", {{"CPU", 1}}).node, idle);
  (void)busy;
}

TEST_F(PolicyTest, HybridQueuesLocallyWhenNoNodeHasRoomNow) {
  local_ = AddNode({{"CPU", 4}}, {});
  AddNode({{"CPU", 4}}, {});
  EXPECT_EQ(Place("hybrid", {{"CPU", 2}}).node, local_);
  // ... and where it fits at all when the local node never can.
  NodeId gpu = AddNode({{"CPU", 4}, {"GPU", 1}}, {});
  EXPECT_EQ(Place("hybrid", {{"GPU", 1}}).node, gpu);
}

TEST_F(PolicyTest, InfeasibleNamesWhatWasAskedAndWhatNodesHave) {
  local_ = AddNode({{"CPU", 4}}, {{"CPU", 4}});
  Placement p = Place("hybrid", {{"CPU", 64}, {"GPU", 1}});
  EXPECT_FALSE(p.feasible);
  EXPECT_NE(p.error.find("CPU: 64"), std::string::npos) << p.error;
  EXPECT_NE(p.error.find("GPU: 1 > 0"), std::string::npos) << p.error;
  EXPECT_NE(p.error.find("--resources"), std::string::npos) << p.error;
}

TEST_F(PolicyTest, DeadNodesAreNeverChosen) {
  local_ = AddNode({{"CPU", 1}}, {});
  NodeId dead = AddNode({{"CPU", 8}}, {{"CPU", 8}});
  view_.MarkDead(dead);
  EXPECT_EQ(Place("hybrid", {{"CPU", 1}}).node, local_);
  EXPECT_FALSE(Place("hybrid", {{"CPU", 4}}).feasible);
}

TEST_F(PolicyTest, SpreadRoundRobinsOverNodesWithRoom) {
  local_ = AddNode({{"CPU", 4}}, {{"CPU", 4}});
  AddNode({{"CPU", 4}}, {{"CPU", 4}});
  AddNode({{"CPU", 4}}, {{"CPU", 4}});
  std::map<NodeId, int> hits;
  for (int i = 0; i < 9; ++i) hits[Place("spread", {{"CPU", 1}}).node]++;
  ASSERT_EQ(hits.size(), 3u);
  for (const auto& [id, n] : hits) EXPECT_EQ(n, 3);
}

TEST_F(PolicyTest, NodeAffinityHardAndSoft) {
  local_ = AddNode({{"CPU", 4}}, {{"CPU", 4}});
  NodeId target = AddNode({{"CPU", 2}}, {{"CPU", 0}});
  EXPECT_EQ(Place("node_affinity", {{"CPU", 1}}, target).node, target);        // queues there
  EXPECT_EQ(Place("node_affinity", {{"CPU", 1}}, target, true).node, local_);  // soft: elsewhere
  Placement too_big = Place("node_affinity", {{"CPU", 3}}, target);
  EXPECT_FALSE(too_big.feasible);
  EXPECT_NE(too_big.error.find("can never run"), std::string::npos);
  view_.MarkDead(target);
  EXPECT_NE(Place("node_affinity", {{"CPU", 1}}, target).error.find("dead"), std::string::npos);
  EXPECT_FALSE(Place("node_affinity", {{"CPU", 1}}, NodeId::FromRandom()).feasible);
}

TEST_F(PolicyTest, UnknownPolicyIsAnError) {
  local_ = AddNode({{"CPU", 1}}, {{"CPU", 1}});
  EXPECT_NE(Place("nope", {{"CPU", 1}}).error.find("unknown scheduling strategy"),
            std::string::npos);
}

TEST(ResourceSetTest, FixedPointArithmeticNeverDrifts) {
  ResourceSet total = R({{"CPU", 1}});
  ResourceSet tenth = R({{"CPU", 0.1}});
  ResourceSet used;
  for (int i = 0; i < 10; ++i) used.Add(tenth);
  EXPECT_TRUE(used == total);
  for (int i = 0; i < 10; ++i) used.Subtract(tenth);
  EXPECT_TRUE(used.Empty());
  used.Subtract(tenth);  // never below zero
  EXPECT_TRUE(used.Empty());
}

TEST(ResourceSetTest, SubsetShortfallAndText) {
  ResourceSet have = R({{"CPU", 4}, {"memory", 1e9}});
  EXPECT_TRUE(R({{"CPU", 4}}).IsSubsetOf(have));
  EXPECT_FALSE(R({{"CPU", 5}}).IsSubsetOf(have));
  EXPECT_FALSE(R({{"GPU", 1}}).IsSubsetOf(have));
  EXPECT_EQ(R({{"CPU", 5}, {"GPU", 1}}).Shortfall(have), "CPU: 5 > 4, GPU: 1 > 0");
  EXPECT_EQ(R({{"CPU", 2}, {"GPU", 0.5}}).ToString(), "{CPU: 2, GPU: 0.5}");
  EXPECT_TRUE(R({{"CPU", 0}}).Empty());
}

TEST(ResourceSetTest, BadInputIsRejectedWithAReason) {
  EXPECT_NE(ResourceSet::FromMap({{"CPU", -1}}).status().message().find("CPU"), std::string::npos);
  EXPECT_FALSE(ResourceSet::FromMap({{"", 1}}).ok());
  EXPECT_FALSE(ResourceSet::FromMap({{"a b", 1}}).ok());
  EXPECT_FALSE(ResourceSet::FromMap({{"CPU", 1.0 / 0.0}}).ok());
  EXPECT_TRUE(ResourceSet::FromJson("{\"CPU\": 2, \"accel:tpu\": 1}").ok());
  EXPECT_FALSE(ResourceSet::FromJson("[1,2]").ok());
  EXPECT_FALSE(ResourceSet::FromJson("{\"CPU\": \"two\"}").ok());
  EXPECT_FALSE(ResourceSet::FromJson("{").ok());
}

}  // namespace
}  // namespace lumen
