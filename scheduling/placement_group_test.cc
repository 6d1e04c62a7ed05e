#include "scheduling/placement_group.h"

#include <set>

#include "gtest/gtest.h"

namespace lumen {
namespace {

ResourceSet R(std::map<std::string, double> m) { return *ResourceSet::FromMap(m); }

class PlaceBundlesTest : public ::testing::Test {
 protected:
  NodeId Add(double cpus_total, double cpus_free) {
    NodeId id = NodeId::FromRandom();
    view_.Upsert(NodeView{id, {R({{"CPU", cpus_total}}), R({{"CPU", cpus_free}})}, "", true});
    return id;
  }
  std::vector<ResourceSet> Bundles(int n, double cpus) {
    return std::vector<ResourceSet>(n, R({{"CPU", cpus}}));
  }
  ClusterView view_;
};

TEST_F(PlaceBundlesTest, StrictPackPutsEverythingOnOneNodeOrNowhere) {
  Add(4, 4);
  NodeId big = Add(8, 8);
  auto placed = PlaceBundles(view_, Bundles(3, 2), BundleStrategy::kStrictPack, false);
  ASSERT_TRUE(placed.ok()) << placed.status();
  for (const auto& n : *placed) EXPECT_EQ(n, big);
  auto too_big = PlaceBundles(view_, Bundles(5, 2), BundleStrategy::kStrictPack, false);
  EXPECT_FALSE(too_big.ok());
  EXPECT_NE(too_big.status().message().find("CPU: 10"), std::string::npos) << too_big.status();
}

TEST_F(PlaceBundlesTest, PackUsesFewNodesAndSpreadUsesMany) {
  for (int i = 0; i < 4; ++i) Add(4, 4);
  auto packed = PlaceBundles(view_, Bundles(4, 2), BundleStrategy::kPack, false);
  ASSERT_TRUE(packed.ok());
  EXPECT_EQ(std::set<NodeId>(packed->begin(), packed->end()).size(), 2u);
  auto spread = PlaceBundles(view_, Bundles(4, 1), BundleStrategy::kSpread, false);
  ASSERT_TRUE(spread.ok());
  EXPECT_EQ(std::set<NodeId>(spread->begin(), spread->end()).size(), 4u);
  auto more = PlaceBundles(view_, Bundles(6, 1), BundleStrategy::kSpread, false);
  ASSERT_TRUE(more.ok()) << "SPREAD reuses nodes when it must";
}

TEST_F(PlaceBundlesTest, StrictSpreadNeedsADifferentNodePerBundle) {
  for (int i = 0; i < 3; ++i) Add(4, 4);
  EXPECT_TRUE(PlaceBundles(view_, Bundles(3, 1), BundleStrategy::kStrictSpread, false).ok());
  auto four = PlaceBundles(view_, Bundles(4, 1), BundleStrategy::kStrictSpread, true);
  EXPECT_FALSE(four.ok());
  EXPECT_NE(four.status().message().find("STRICT_SPREAD"), std::string::npos);
}

TEST_F(PlaceBundlesTest, NowAndEverDiffer) {
  Add(4, 0);
  EXPECT_FALSE(PlaceBundles(view_, Bundles(1, 2), BundleStrategy::kPack, false).ok());
  EXPECT_TRUE(PlaceBundles(view_, Bundles(1, 2), BundleStrategy::kPack, true).ok());
  EXPECT_FALSE(PlaceBundles(view_, Bundles(1, 8), BundleStrategy::kPack, true).ok());
}

TEST_F(PlaceBundlesTest, FixedBundlesStayAndTheRestAvoidTheirNodesForStrictSpread) {
  NodeId a = Add(4, 4);
  Add(4, 4);
  Add(4, 4);
  std::vector<NodeId> fixed(3);
  fixed[0] = a;
  auto placed = PlaceBundles(view_, Bundles(3, 1), BundleStrategy::kStrictSpread, false, fixed);
  ASSERT_TRUE(placed.ok());
  EXPECT_EQ((*placed)[0], a);
  EXPECT_EQ(std::set<NodeId>(placed->begin(), placed->end()).size(), 3u);
}

TEST(GroupResourcesTest, NamesDemandsAndMarkers) {
  PlacementGroupId g = PlacementGroupId::FromRandom();
  ResourceSet added = BundleResources(R({{"CPU", 2}}), g, 1);
  EXPECT_EQ(added.Get(GroupResourceName("CPU", g, 1)), 2);
  EXPECT_EQ(added.Get(GroupResourceName("CPU", g, -1)), 2);
  EXPECT_TRUE(GroupDemand(R({{"CPU", 1}}), g, 1).IsSubsetOf(added));
  EXPECT_TRUE(GroupDemand(R({{"CPU", 1}}), g, -1).IsSubsetOf(added));
  EXPECT_FALSE(GroupDemand(R({{"CPU", 1}}), g, 0).IsSubsetOf(added)) << "another bundle";
  EXPECT_TRUE(GroupDemand(ResourceSet(), g, 1).IsSubsetOf(added)) << "no resources: marker";
  EXPECT_TRUE(UsesGroup(GroupDemand(R({{"CPU", 1}}), g, 0), g));
  EXPECT_FALSE(UsesGroup(R({{"CPU", 1}}), g));
  EXPECT_FALSE(UsesGroup(GroupDemand(R({{"CPU", 1}}), g, 0), PlacementGroupId::FromRandom()));
  EXPECT_TRUE(UsesBundle(GroupDemand(R({{"CPU", 1}}), g, 1), g, 1));
  EXPECT_FALSE(UsesBundle(GroupDemand(R({{"CPU", 1}}), g, 11), g, 1)) << "index 11 is not 1";
  EXPECT_FALSE(UsesBundle(GroupDemand(R({{"CPU", 1}}), g, -1), g, 1)) << "any bundle";
}

}  // namespace
}  // namespace lumen
