#include "common/ids.h"

#include <unordered_set>

#include "common/bounded_set.h"
#include "gtest/gtest.h"

namespace lumen {
namespace {

TEST(IdsTest, NilHexAndBinaryRoundTrip) {
  EXPECT_TRUE(ObjectId().IsNil());
  NodeId n = NodeId::FromRandom();
  EXPECT_FALSE(n.IsNil());
  EXPECT_EQ(NodeId::FromHex(n.Hex()), n);
  EXPECT_EQ(NodeId::FromBinary(n.Binary()), n);
  EXPECT_EQ(n.Hex().size(), 2 * NodeId::kSize);
  EXPECT_TRUE(NodeId::FromHex("zz").IsNil());
  EXPECT_TRUE(NodeId::FromHex(std::string(32, 'g')).IsNil());
  EXPECT_TRUE(NodeId::FromBinary("short").IsNil());
}

TEST(IdsTest, JobIdsAreBigEndianCounters) {
  JobId j = JobId::FromInt(0x01020304);
  EXPECT_EQ(j.Hex(), "01020304");
  EXPECT_EQ(j.ToInt(), 0x01020304u);
}

TEST(IdsTest, TaskAndObjectIdsCarryWhatTheyDeriveFrom) {
  JobId job = JobId::FromInt(7);
  TaskId driver = DriverTaskId(job);
  EXPECT_EQ(JobIdOfTask(driver), job);
  TaskId t1 = NormalTaskId(job, driver, 1);
  TaskId t2 = NormalTaskId(job, driver, 2);
  EXPECT_NE(t1, t2);
  EXPECT_EQ(t1, NormalTaskId(job, driver, 1));  // deterministic, for re-execution
  EXPECT_EQ(JobIdOfTask(t1), job);
  EXPECT_EQ(JobIdOfActor(NilActorIdForJob(job)), job);

  ObjectId ret = ReturnObjectId(t1, 1);
  ObjectId put = PutObjectId(t1, 1);
  EXPECT_NE(ret, put);
  EXPECT_EQ(TaskIdOfObject(ret), t1);
  EXPECT_EQ(TaskIdOfObject(put), t1);
  EXPECT_EQ(ObjectIndex(ret), 1u);
  EXPECT_EQ(ObjectIndex(put), 1u);
  EXPECT_FALSE(IsPutObject(ret));
  EXPECT_TRUE(IsPutObject(put));
}

TEST(IdsTest, ManyDerivedTaskIdsAreDistinct) {
  JobId job = JobId::FromInt(1);
  TaskId parent = DriverTaskId(job);
  std::unordered_set<TaskId> seen;
  for (uint64_t i = 0; i < 100000; ++i) seen.insert(NormalTaskId(job, parent, i));
  EXPECT_EQ(seen.size(), 100000u);
}

TEST(IdsTest, PlacementGroupIdsCarryTheirJob) {
  JobId job = JobId::FromInt(7);
  PlacementGroupId a = NewPlacementGroupId(job), b = NewPlacementGroupId(job);
  EXPECT_NE(a, b);
  EXPECT_EQ(JobIdOfPlacementGroup(a), job);
}

TEST(BoundedSetTest, ForgetsTheOldestPastCapacity) {
  BoundedSet<int> set(3);
  EXPECT_TRUE(set.Insert(1));
  EXPECT_FALSE(set.Insert(1));
  set.Insert(2);
  set.Insert(3);
  set.Insert(4);
  EXPECT_EQ(set.size(), 3u);
  EXPECT_FALSE(set.Contains(1));
  EXPECT_TRUE(set.Contains(2));
  EXPECT_TRUE(set.Contains(4));
  set.Erase(3);
  EXPECT_FALSE(set.Contains(3));
  EXPECT_TRUE(set.Insert(3));
  EXPECT_TRUE(set.Contains(3));
  EXPECT_LE(set.size(), 3u);
}

}  // namespace
}  // namespace lumen
