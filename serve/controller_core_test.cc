// ControllerCore's reconciliation with fake replica operations and a fake
// clock: starting, replacing, adopting, rolling, failing and deleting.
#include "serve/controller_core.h"

#include <map>
#include <vector>

#include "gtest/gtest.h"

namespace lumen::serve {
namespace {

// Replicas that live in a map; the test decides when calls are answered.
class FakeOps : public ReplicaOps {
 public:
  struct Rep {
    ReplicaSpec spec;
    bool alive = true;
    bool killed = false;
    std::string start_error;  // answered to Stats when set
  };
  std::map<std::string, Rep> reps;  // by handle
  std::vector<std::pair<std::string, std::function<void(absl::StatusOr<ReplicaStats>)>>> stats;
  int next = 1;

  std::string Start(const ReplicaSpec& spec) override {
    std::string h = "h" + std::to_string(next++);
    reps[h].spec = spec;
    return h;
  }
  void Stats(const std::string& h,
             std::function<void(absl::StatusOr<ReplicaStats>)> done) override {
    stats.emplace_back(h, std::move(done));
  }
  void Health(const std::string& h, std::function<void(absl::StatusOr<bool>)> done) override {
    done(reps[h].alive);
  }
  void Reconfigure(const std::string&, const std::string&,
                   std::function<void(absl::StatusOr<std::string>)> done) override {
    done(std::string());
  }
  void State(const std::string&,
             std::function<void(absl::StatusOr<ReplicaActorState>)> done) override {
    done(ReplicaActorState{});
  }
  void Kill(const std::string& h) override { reps[h].killed = true; }

  // Answers every Stats call waiting: alive replicas with their address.
  void AnswerStats() {
    auto pending = std::move(stats);
    stats.clear();
    for (auto& [h, done] : pending) {
      Rep& r = reps[h];
      if (!r.start_error.empty()) {
        done(absl::UnavailableError(r.start_error));
      } else if (!r.alive || r.killed) {
        done(absl::UnavailableError("dead"));
      } else {
        ReplicaStats s;
        s.address = "addr-" + h;
        s.app = r.spec.app;
        s.deployment = r.spec.deployment;
        s.replica = r.spec.id;
        s.version = r.spec.version;
        done(s);
      }
    }
  }
  int Live() const {
    int n = 0;
    for (const auto& [h, r] : reps) n += !r.killed;
    return n;
  }
};

AppConfig App(int replicas, const std::string& init = "1") {
  AppConfig a;
  a.name = "app";
  a.route_prefix = "/app";
  a.ingress = "D";
  DeploymentConfig d;
  d.name = d.cls = "D";
  d.num_replicas = replicas;
  d.init_args = Json::parse(init);
  a.deployments.push_back(d);
  return a;
}

class ControllerCoreTest : public ::testing::Test {
 protected:
  // Ticks and answers until nothing changes (bounded).
  void Settle() {
    for (int i = 0; i < 50; ++i) {
      core_.Tick();
      ops_.AnswerStats();
      clock_.AdvanceMs(100);
    }
  }
  size_t RoutedReplicas() {
    return tables_.empty() ? 0 : tables_.back().deployments["D"].replicas.size();
  }

  FakeClock clock_;
  FakeOps ops_;
  std::vector<RouteTable> tables_;
  ControllerCore core_{"app", ControllerCore::Options{}, &clock_, &ops_,
                       [this](const RouteTable& t) { tables_.push_back(t); }};
};

TEST_F(ControllerCoreTest, StartsTheDeclaredReplicasAndPublishesThem) {
  ASSERT_TRUE(core_.Apply(App(2)).ok());
  Settle();
  EXPECT_EQ(ops_.Live(), 2);
  EXPECT_TRUE(core_.Settled());
  EXPECT_EQ(RoutedReplicas(), 2u);
  for (size_t i = 1; i < tables_.size(); ++i) {
    EXPECT_GT(tables_[i].version, tables_[i - 1].version) << "versions only grow";
  }
}

TEST_F(ControllerCoreTest, ADeadReplicaIsReplaced) {
  ASSERT_TRUE(core_.Apply(App(2)).ok());
  Settle();
  ops_.reps["h1"].alive = false;
  clock_.AdvanceMs(5'000);  // health and stats come due
  Settle();
  EXPECT_TRUE(ops_.reps["h1"].killed);
  EXPECT_EQ(ops_.Live(), 2);
  EXPECT_EQ(ops_.reps.size(), 3u) << "one new replica";
  EXPECT_EQ(RoutedReplicas(), 2u);
}

TEST_F(ControllerCoreTest, ARestartedControllerAdoptsRunningReplicasAndStartsNone) {
  ASSERT_TRUE(core_.Apply(App(2)).ok());
  Settle();
  std::vector<FoundReplica> found;
  for (auto& [h, r] : ops_.reps) {
    ReplicaStats s;
    s.address = "addr-" + h;
    s.app = "app";
    s.deployment = "D";
    s.replica = r.spec.id;
    s.version = r.spec.version;
    found.push_back({h, s});
  }
  std::vector<RouteTable> tables;
  ControllerCore again("app", ControllerCore::Options{}, &clock_, &ops_,
                       [&](const RouteTable& t) { tables.push_back(t); });
  again.Adopt(found);
  ASSERT_TRUE(again.Apply(App(2)).ok());
  for (int i = 0; i < 20; ++i) {
    again.Tick();
    ops_.AnswerStats();
    clock_.AdvanceMs(100);
  }
  EXPECT_EQ(ops_.reps.size(), 2u) << "no new replica";
  EXPECT_EQ(ops_.Live(), 2) << "none stopped";
  EXPECT_TRUE(again.Settled());
  ASSERT_FALSE(tables.empty());
  EXPECT_EQ(tables.back().deployments["D"].replicas.size(), 2u);
}

TEST_F(ControllerCoreTest, ANewVersionRollsWithANewReplicaAheadOfEachOldOne) {
  ASSERT_TRUE(core_.Apply(App(2, "1")).ok());
  Settle();
  ASSERT_TRUE(core_.Apply(App(2, "2")).ok());
  size_t min_routed = 99;
  for (int i = 0; i < 300 && !core_.Settled(); ++i) {
    core_.Tick();
    ops_.AnswerStats();
    min_routed = std::min(min_routed, RoutedReplicas());
    clock_.AdvanceMs(100);
  }
  EXPECT_TRUE(core_.Settled());
  EXPECT_GE(min_routed, 2u) << "never fewer routable replicas than declared";
  EXPECT_TRUE(ops_.reps["h1"].killed && ops_.reps["h2"].killed);
  EXPECT_EQ(ops_.Live(), 2);
}

TEST_F(ControllerCoreTest, AReplicaThatCannotStartMakesTheDeploymentUnavailableAtOnce) {
  ASSERT_TRUE(core_.Apply(App(1)).ok());
  ops_.reps["h1"].start_error = "cannot place it: no node has {CPU: 64}";
  core_.Tick();
  ops_.AnswerStats();
  core_.Tick();
  ASSERT_FALSE(tables_.empty());
  EXPECT_NE(tables_.back().deployments["D"].unavailable.find("CPU: 64"), std::string::npos)
      << tables_.back().ToJson();
}

TEST_F(ControllerCoreTest, DeleteStopsEveryReplica) {
  ASSERT_TRUE(core_.Apply(App(2)).ok());
  Settle();
  core_.Delete();
  EXPECT_FALSE(core_.Deleted());
  clock_.AdvanceMs(100'000);
  Settle();
  EXPECT_TRUE(core_.Deleted());
  EXPECT_EQ(ops_.Live(), 0);
}

}  // namespace
}  // namespace lumen::serve
