// DispatcherCore's state machine with fake replica connections and a fake
// clock: who answers, when, and with what.
#include "serve/dispatcher_core.h"

#include <deque>
#include <map>
#include <memory>
#include <vector>

#include "gtest/gtest.h"

namespace lumen::serve {
namespace {

// Connections whose calls are answered by the test.
struct FakeNet {
  struct Call {
    std::string address;
    Request request;
    ReplicaConnection::Done done;
  };
  std::vector<Call> calls;
  std::map<std::string, bool> broken;  // by address

  class Conn : public ReplicaConnection {
   public:
    Conn(FakeNet* net, std::string address) : net_(net), address_(std::move(address)) {}
    void Call(const Request& request, Done done) override {
      net_->calls.push_back({address_, request, std::move(done)});
    }
    bool broken() const override { return net_->broken[address_]; }
    size_t in_flight() const override { return 0; }

   private:
    FakeNet* net_;
    std::string address_;
  };
  ConnectionFactory Factory() {
    return [this](const std::string& address) { return std::make_unique<Conn>(this, address); };
  }
  // Answers the oldest call still open.
  void Answer(absl::StatusOr<Response> r) {
    ASSERT_FALSE(calls.empty());
    Call c = std::move(calls.front());
    calls.erase(calls.begin());
    c.done(std::move(r));
  }
};

RouteTable Table(int64_t version, std::vector<std::string> addresses, int max_queued = 10,
                 std::string unavailable = "") {
  RouteTable t;
  t.app = "app";
  t.route_prefix = "/app";
  t.ingress = "D";
  t.version = version;
  DeploymentRoute d;
  d.max_ongoing = 1;
  d.max_queued = max_queued;
  d.request_timeout_s = 5;
  d.unavailable = unavailable;
  for (size_t i = 0; i < addresses.size(); ++i) {
    ReplicaRoute r;
    r.id = "D#" + std::to_string(i + 1);
    r.address = addresses[i];
    d.replicas.push_back(r);
  }
  t.deployments["D"] = d;
  return t;
}

struct Result {
  int answers = 0;
  absl::StatusOr<Response> last = absl::UnknownError("none");
};

DispatcherCore::Done Into(Result* r) {
  return [r](absl::StatusOr<Response> a) {
    r->answers++;
    r->last = std::move(a);
  };
}

Request Body(const std::string& body) {
  Request r;
  r.body = body;
  return r;
}

class DispatcherCoreTest : public ::testing::Test {
 protected:
  // Declared before the core: it answers what waits when destroyed.
  std::deque<Result> results_;
  Result& NewResult() { return results_.emplace_back(); }
  FakeClock clock_;
  FakeNet net_;
  DispatcherCore core_{DispatcherCore::Options{}, &clock_, net_.Factory()};
};

TEST_F(DispatcherCoreTest, ARequestGoesToAReplicaAndIsAnsweredOnce) {
  core_.SetTable(Table(1, {"r1:1"}));
  Result& r = NewResult();
  core_.Send("app", "D", Body("hi"), Into(&r));
  ASSERT_EQ(net_.calls.size(), 1u);
  EXPECT_EQ(net_.calls[0].request.body, "hi");
  Response ok;
  ok.body = "answer";
  net_.Answer(ok);
  ASSERT_EQ(r.answers, 1);
  ASSERT_TRUE(r.last.ok());
  EXPECT_EQ(r.last->body, "answer");
  clock_.AdvanceMs(10'000);  // its deadline passes: nothing more
  core_.Expire();
  EXPECT_EQ(r.answers, 1);
}

TEST_F(DispatcherCoreTest, RequestsWaitForAnUnknownAppsTableThenRunOrGetNotFound) {
  Result& r1 = NewResult();
  Result& r2 = NewResult();
  core_.Send("app", "D", Body("1"), Into(&r1));
  EXPECT_EQ(r1.answers, 0);
  EXPECT_EQ(core_.TakeWantedTables(), std::vector<std::string>{"app"});
  core_.SetTable(Table(1, {"r1:1"}));
  ASSERT_EQ(net_.calls.size(), 1u) << "sent once the table came";
  core_.Send("gone", "D", Body("2"), Into(&r2));
  core_.AppMissing("gone");
  ASSERT_EQ(r2.answers, 1);
  EXPECT_EQ(r2.last.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(DispatcherCoreTest, AQueuedRequestPastItsDeadlineIsAnsweredByTheTimer) {
  core_.SetTable(Table(1, {"r1:1"}));
  Result& busy = NewResult();
  Result& queued = NewResult();
  core_.Send("app", "D", Body("1"), Into(&busy));           // takes the one slot
  core_.Send("app", "D", Body("2"), Into(&queued), 1'000);  // waits
  ASSERT_EQ(net_.calls.size(), 1u);
  ASSERT_TRUE(core_.NextDeadline().has_value());
  EXPECT_EQ(*core_.NextDeadline(), clock_.NowMs() + 1'000);
  clock_.AdvanceMs(999);
  core_.Expire();
  EXPECT_EQ(queued.answers, 0);
  clock_.AdvanceMs(1);
  core_.Expire();
  ASSERT_EQ(queued.answers, 1);
  EXPECT_EQ(queued.last.status().code(), absl::StatusCode::kDeadlineExceeded);
  net_.Answer(Response{});
  EXPECT_EQ(busy.answers, 1);
  EXPECT_EQ(net_.calls.size(), 0u) << "the expired request was never sent";
}

TEST_F(DispatcherCoreTest, ARequestWhoseReplicaIsLostIsSentToAnother) {
  core_.SetTable(Table(1, {"r1:1", "r2:1"}));
  Result& r = NewResult();
  core_.Send("app", "D", Body("x"), Into(&r));
  ASSERT_EQ(net_.calls.size(), 1u);
  std::string first = net_.calls[0].address;
  net_.broken[first] = true;
  net_.Answer(absl::UnavailableError("connection lost"));
  EXPECT_EQ(r.answers, 0) << "not failed: sent again";
  ASSERT_EQ(net_.calls.size(), 1u);
  EXPECT_NE(net_.calls[0].address, first);
  net_.Answer(Response{});
  ASSERT_EQ(r.answers, 1);
  EXPECT_TRUE(r.last.ok());
}

TEST_F(DispatcherCoreTest, ADeploymentThatCannotRunAnswersAtOnceWithWhy) {
  core_.SetTable(Table(1, {}, 10, "no node has {CPU: 64}"));
  Result& r = NewResult();
  core_.Send("app", "D", Body("x"), Into(&r));
  ASSERT_EQ(r.answers, 1);
  EXPECT_EQ(r.last.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(r.last.status().message().find("CPU: 64"), std::string::npos) << r.last.status();
}

TEST_F(DispatcherCoreTest, AFullQueueRefusesAndAnOlderTableIsIgnored) {
  core_.SetTable(Table(2, {"r1:1"}, /*max_queued=*/1));
  core_.SetTable(Table(1, {}, 1, "stale"));  // older: ignored
  Result& a = NewResult();
  Result& b = NewResult();
  Result& c = NewResult();
  core_.Send("app", "D", Body("a"), Into(&a));
  core_.Send("app", "D", Body("b"), Into(&b));
  core_.Send("app", "D", Body("c"), Into(&c));
  EXPECT_EQ(a.answers + b.answers, 0);
  ASSERT_EQ(c.answers, 1);
  EXPECT_EQ(c.last.status().code(), absl::StatusCode::kUnavailable);
  auto counters = core_.CountersByDeployment();
  EXPECT_EQ((counters[{"app", "D"}].queued), 1u);
  EXPECT_EQ((counters[{"app", "D"}].ongoing), 1);
}

}  // namespace
}  // namespace lumen::serve

namespace lumen::serve {
namespace {

TEST_F(DispatcherCoreTest, AMultiplexedModelGoesToAReplicaThatHasItLoaded) {
  RouteTable t = Table(1, {"r1:1", "r2:1", "r3:1"});
  t.deployments["D"].replicas[2].models = {"m7"};
  core_.SetTable(t);
  auto model = [](const std::string& name) {
    Request r;
    r.headers["x-lumen-model"] = name;
    return r;
  };
  Result& first = NewResult();
  core_.Send("app", "D", model("m7"), Into(&first));
  ASSERT_EQ(net_.calls.size(), 1u);
  EXPECT_EQ(net_.calls[0].address, "r3:1") << "the replica that has m7";
  // That replica is full (max_ongoing 1): the next m7 request goes to one
  // that will load it rather than wait.
  Result& second = NewResult();
  core_.Send("app", "D", model("m7"), Into(&second));
  ASSERT_EQ(net_.calls.size(), 2u);
  EXPECT_NE(net_.calls[1].address, "r3:1");
  net_.Answer(Response{});
  net_.Answer(Response{});
  EXPECT_EQ(first.answers + second.answers, 2);
}

}  // namespace
}  // namespace lumen::serve
