// Routers, the routing table and request helpers, without a cluster.
#include "serve/router.h"

#include <map>

#include "gtest/gtest.h"
#include "lumen/serve.h"
#include "serve/route_table.h"

namespace lumen::serve {
namespace {

std::unique_ptr<Router> Make(const std::string& policy, int max_ongoing = 2) {
  RouterOptions o;
  o.max_ongoing = max_ongoing;
  o.seed = 7;
  o.ramp_ms = 0;
  auto r = MakeRouter(policy, o);
  EXPECT_TRUE(r.ok()) << r.status();
  return std::move(*r);
}

TEST(RouterTest, UnknownPolicyNamesTheKnownOnes) {
  auto r = MakeRouter("fastest", {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("pow2"), std::string::npos);
  EXPECT_NE(r.status().message().find("swrr"), std::string::npos);
}

TEST(RouterTest, EveryPolicyFillsSlotsThenRefuses) {
  for (const auto& policy : RouterPolicies()) {
    auto r = Make(policy, 2);
    r->SetReplicas({"a", "b", "c"}, 0);
    std::map<int, int> taken;
    for (int n = 0; n < 6; ++n) {
      int i = r->Pick(policy == "hash" ? "key" + std::to_string(n * 7919) : "", n);
      if (i < 0) continue;
      r->Started(i);
      taken[i]++;
    }
    for (const auto& [i, count] : taken) EXPECT_LE(count, 2) << policy << " overfilled " << i;
    if (policy != "hash") {
      EXPECT_EQ(r->Pick("", 100), -1) << policy << ": all six slots are taken";
      r->Finished(1);
      EXPECT_EQ(r->Pick("", 101), 1) << policy << ": the freed slot is used";
    }
  }
}

TEST(RouterTest, PowerOfTwoPrefersTheLessLoaded) {
  auto r = Make("pow2", 100);
  r->SetReplicas({"a", "b"}, 0);
  for (int n = 0; n < 10; ++n) r->Started(0);
  for (int n = 0; n < 20; ++n) {
    int i = r->Pick("", n);
    EXPECT_EQ(i, 1) << "a has 10 in flight, b none";
  }
}

TEST(RouterTest, HashSendsAKeyToTheSameReplicaAndMovesFewKeysWhenOneIsAdded) {
  auto r = Make("hash", 1000);
  r->SetReplicas({"a", "b", "c"}, 0);
  std::map<std::string, std::string> before;
  for (int k = 0; k < 300; ++k) {
    std::string key = "user" + std::to_string(k);
    int i = r->Pick(key, 0);
    ASSERT_GE(i, 0);
    EXPECT_EQ(r->Pick(key, 0), i) << "same key, same replica";
    before[key] = r->id(i);
  }
  r->SetReplicas({"a", "b", "c", "d"}, 0);
  int moved = 0;
  for (const auto& [key, id] : before) {
    std::string now = r->id(r->Pick(key, 0));
    if (now != id) {
      moved++;
      EXPECT_EQ(now, "d") << "a key moves only to the new replica";
    }
  }
  EXPECT_GT(moved, 20);
  EXPECT_LT(moved, 150) << "about a quarter of the keys move";
}

TEST(RouterTest, SmoothWeightedFollowsReportedCapacityAndInterleaves) {
  RouterOptions o;
  o.max_ongoing = 1000;
  o.ramp_ms = 0;
  auto r = std::move(*MakeRouter("swrr", o));
  r->SetReplicas({"fast", "slow"}, 0);
  // Same concurrency, three times the throughput.
  r->Report("fast", {.ongoing = 2, .completed_per_s = 300, .reported_at_ms = 1});
  r->Report("slow", {.ongoing = 2, .completed_per_s = 100, .reported_at_ms = 1});
  std::map<std::string, int> picks;
  std::string sequence;
  for (int n = 0; n < 400; ++n) {
    int i = r->Pick("", 5'000 + n);  // past the weight period: recomputed
    picks[r->id(i)]++;
    if (n < 8) sequence += r->id(i)[0];
  }
  EXPECT_NEAR(picks["fast"] / static_cast<double>(picks["slow"]), 3.0, 0.2);
  EXPECT_EQ(sequence.find("ffff"), std::string::npos) << "smooth: " << sequence;
}

TEST(RouterTest, SmoothWeightedForgetsStaleReportsAndRampsUpNewReplicas) {
  RouterOptions o;
  o.max_ongoing = 1000;
  o.ramp_ms = 10'000;
  o.report_ttl_ms = 1'000;
  auto r = std::move(*MakeRouter("swrr", o));
  r->SetReplicas({"old"}, 0);
  r->SetReplicas({"old", "new"}, 20'000);  // "new" joins at t = 20 s
  std::map<std::string, int> early;
  for (int n = 0; n < 200; ++n) early[r->id(r->Pick("", 20'000 + n))]++;
  EXPECT_LT(early["new"], early["old"] / 3) << "a new replica ramps up";
  std::map<std::string, int> later;
  for (int n = 0; n < 200; ++n) later[r->id(r->Pick("", 40'000 + n * 10))]++;
  EXPECT_NEAR(later["new"], later["old"], 20) << "ramped up: equal (no fresh reports)";

  r->Report("old", {.ongoing = 1, .completed_per_s = 1000, .reported_at_ms = 50'000});
  std::map<std::string, int> stale;
  for (int n = 0; n < 200; ++n) stale[r->id(r->Pick("", 60'000 + n * 10))]++;
  EXPECT_NEAR(stale["new"], stale["old"], 20) << "a report 10 s old no longer counts";
}

TEST(RouterTest, SwrrWeightFallsAsAReplicaFills) {
  double idle = SwrrWeight({.ongoing = 0.1, .completed_per_s = 10}, 8, 1);
  double full = SwrrWeight({.ongoing = 8, .completed_per_s = 800}, 8, 1);
  double half = SwrrWeight({.ongoing = 4, .completed_per_s = 400}, 8, 1);
  EXPECT_GT(idle, half);  // same capacity per slot (100/s), more room
  EXPECT_GT(half, full);
  EXPECT_GT(full, 0) << "a full replica keeps a small weight";
}

TEST(RouteTableTest, RoundTripsThroughJson) {
  RouteTable t;
  t.app = "ocr";
  t.route_prefix = "/ocr";
  t.ingress = "Pipeline";
  t.version = 4;
  DeploymentRoute d;
  d.router = "swrr";
  d.max_ongoing = 3;
  d.replicas.push_back(
      {"Detector#1", ActorId::FromRandom(), "n1", "127.0.0.1:7001", {1.5, 20, 99}});
  t.deployments["Detector"] = d;
  auto back = RouteTable::FromJson(t.ToJson());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->version, 4);
  ASSERT_EQ(back->deployments.at("Detector").replicas.size(), 1u);
  EXPECT_EQ(back->deployments.at("Detector").replicas[0].actor, d.replicas[0].actor);
  EXPECT_EQ(back->deployments.at("Detector").replicas[0].load.completed_per_s, 20);
  EXPECT_EQ(back->deployments.at("Detector").replicas[0].address, "127.0.0.1:7001");
  EXPECT_FALSE(RouteTable::FromJson("{\"app\": 1}").ok());
}

TEST(RequestTest, HeadersAreCaseInsensitiveAndJsonErrorsSayWhere) {
  Request r;
  r.headers["x-shard"] = "7";
  EXPECT_EQ(r.Header("X-Shard"), "7");
  EXPECT_EQ(r.Header("missing", "none"), "none");
  r.body = "{\"a\": [1, 2}";
  auto j = r.JsonBody();
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(j.status().message().find("not JSON"), std::string::npos);
  Response e = Response::Error(503, "full");
  EXPECT_EQ(e.status, 503);
  EXPECT_EQ(Json::parse(e.body)["error"], "full");
}

}  // namespace
}  // namespace lumen::serve
