// Unit tests of the core worker's parts that need no cluster.
#include <cmath>
#include <functional>
#include <future>
#include <thread>

#include "gtest/gtest.h"
#include "lumen/internal/registry.h"
#include "lumen/metrics.h"
#include "lumen/serialization.h"
#include "prometheus/text_serializer.h"
#include "rpc/metrics.h"
#include "worker/memory_store.h"
#include "worker/reference_counter.h"
#include "worker/task_submitter.h"

namespace lumen::worker {
namespace {

TEST(ReferenceCounterTest, FreesOnceLocalAndSubmittedReferencesAreGone) {
  std::vector<std::pair<ObjectId, size_t>> freed;
  ReferenceCounter refs([&](const ObjectId& id, const std::vector<ObjectLocation>& where) {
    freed.emplace_back(id, where.size());
  });
  ObjectId a = ObjectId::FromRandom();
  refs.AddOwned(a);
  refs.AddLocalRef(a);
  refs.AddSubmittedRefs({a});
  EXPECT_TRUE(refs.AddLocation(a, {NodeId::FromRandom(), "n1:1"}));
  NodeId n2 = NodeId::FromRandom();
  EXPECT_TRUE(refs.AddLocation(a, {n2, "n2:1"}));
  EXPECT_TRUE(refs.AddLocation(a, {n2, "n2:1"}));  // recorded once
  refs.RemoveLocalRef(a);
  refs.RemoveLocalRef(a);
  EXPECT_TRUE(freed.empty()) << "a pending task still uses it";
  refs.RemoveSubmittedRefs({a});
  ASSERT_EQ(freed.size(), 1u);
  EXPECT_EQ(freed[0].first, a);
  EXPECT_EQ(freed[0].second, 2u);
  EXPECT_FALSE(refs.Has(a));
  EXPECT_FALSE(refs.AddLocation(a, {n2, "n2:1"})) << "a late copy learns it was freed";
  refs.AddLocalRef(a);  // unknown ids are ignored
  refs.RemoveLocalRef(a);
  EXPECT_EQ(freed.size(), 1u);
}

TEST(ReferenceCounterTest, ConcurrentCopiesBalance) {
  std::atomic<int> freed{0};
  ReferenceCounter refs([&](const ObjectId&, const std::vector<ObjectLocation>&) { freed++; });
  ObjectId a = ObjectId::FromRandom();
  refs.AddOwned(a);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        refs.AddLocalRef(a);
        refs.RemoveLocalRef(a);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(freed, 0);
  refs.RemoveLocalRef(a);
  EXPECT_EQ(freed, 1);
}

TEST(MemoryStoreTest, WaitGetAndReadyCallbacks) {
  MemoryStore store;
  ObjectId a = ObjectId::FromRandom(), b = ObjectId::FromRandom();
  std::vector<bool> ready;
  EXPECT_FALSE(store.Wait({a, b}, 1, 0, &ready));
  std::promise<std::string> seen;
  store.OnReady(a, [&](const StoredObject& o) { seen.set_value(*o.value); });
  std::thread producer([&] { store.Put(a, StoredObject::Value("x")); });
  EXPECT_TRUE(store.Wait({a, b}, 1, -1, &ready));
  producer.join();
  EXPECT_EQ(ready, (std::vector<bool>{true, false}));
  EXPECT_EQ(seen.get_future().get(), "x");
  EXPECT_FALSE(store.Wait({a, b}, 2, 20, &ready));
  store.Put(b, StoredObject::Error(absl::UnknownError("boom")));
  EXPECT_TRUE(store.Wait({a, b}, 2, 0, &ready));
  EXPECT_EQ(store.Get(b)->kind, StoredObject::Kind::kError);
  bool called = false;
  store.OnReady(b, [&](const StoredObject&) { called = true; });  // present: runs now
  EXPECT_TRUE(called);
  store.Erase(a);
  EXPECT_FALSE(store.Get(a));
  std::thread stopper([&] { store.Shutdown(); });
  EXPECT_FALSE(store.Wait({a}, 1, -1, &ready)) << "shutdown wakes a waiter";
  stopper.join();
}

struct Point {
  int x = 0;
  std::string label;
  std::vector<double> weights;
  MSGPACK_DEFINE(x, label, weights);
};

TEST(SerializationTest, UserTypesAndPackedVectorsRoundTrip) {
  Point p{3, "p", {1.5, 2.5}};
  std::string bytes = internal::Serialize(p);
  auto back = internal::Deserialize<Point>(bytes.data(), bytes.size(), "value");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->x, 3);
  EXPECT_EQ(back->label, "p");
  EXPECT_EQ(back->weights, (std::vector<double>{1.5, 2.5}));

  std::vector<float> big(1 << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<float>(i) * 0.5f;
  std::string packed = internal::Serialize(big);
  EXPECT_LT(packed.size(), big.size() * sizeof(float) + 16) << "packed as raw bytes";
  auto floats = internal::Deserialize<std::vector<float>>(packed.data(), packed.size(), "v");
  ASSERT_TRUE(floats.ok());
  EXPECT_EQ(*floats, big);
}

TEST(SerializationTest, TypeMismatchesAreInvalidArgument) {
  std::string bytes = internal::Serialize(std::string("text"));
  auto as_int = internal::Deserialize<int>(bytes.data(), bytes.size(), "argument 1 of F");
  EXPECT_EQ(as_int.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(as_int.status().message().find("argument 1 of F is not a int"), std::string::npos)
      << as_int.status();
  std::string floats = internal::Serialize(std::vector<float>{1, 2});
  EXPECT_FALSE(internal::Deserialize<std::vector<int32_t>>(floats.data(), floats.size(), "v").ok())
      << "a float array is not an int array";
  std::string garbage = "\xc1\xc1";
  EXPECT_FALSE(internal::Deserialize<int>(garbage.data(), garbage.size(), "v").ok());
}

int Twice(int x) { return 2 * x; }
std::string Join(const std::string& a, std::vector<int> b) { return a + std::to_string(b.size()); }
int Fails(int) { throw std::invalid_argument("bad x"); }
void NoResult(int) {}

TEST(RegistryTest, InvokeUnpacksCallsAndPacks) {
  std::vector<internal::ArgView> args;
  std::string one = internal::Serialize(21);
  args.push_back({one.data(), one.size()});
  auto r = internal::Invoke(&Twice, "Twice", args);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*internal::Deserialize<int>(r->data(), r->size(), "r"), 42);

  std::string s = internal::Serialize(std::string("n="));
  std::string v = internal::Serialize(std::vector<int>{1, 2, 3});
  auto j = internal::Invoke(&Join, "Join", {{s.data(), s.size()}, {v.data(), v.size()}});
  EXPECT_EQ(*internal::Deserialize<std::string>(j->data(), j->size(), "r"), "n=3");
  EXPECT_TRUE(internal::Invoke(&NoResult, "NoResult", args).ok());
}

TEST(RegistryTest, UserExceptionsAndBadArgumentsBecomeStatuses) {
  std::string one = internal::Serialize(1);
  auto thrown = internal::Invoke(&Fails, "Fails", {{one.data(), one.size()}});
  EXPECT_EQ(thrown.status().code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(thrown.status().message(), "Fails threw std::invalid_argument: bad x");
  auto count = internal::Invoke(&Twice, "Twice", {});
  EXPECT_EQ(count.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(count.status().message().find("takes 1 arguments"), std::string::npos);
  std::string text = internal::Serialize(std::string("x"));
  auto type = internal::Invoke(&Twice, "Twice", {{text.data(), text.size()}});
  EXPECT_EQ(type.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RegistryTest, SplitNamesKeepsTemplateAndCallCommas) {
  EXPECT_EQ(internal::SplitNames("A, ns::B,&C::m"),
            (std::vector<std::string>{"A", "ns::B", "C::m"}));
  EXPECT_EQ(internal::SplitNames("F<int, long>, G"),
            (std::vector<std::string>{"F<int, long>", "G"}));
}

TEST(SchedulingKeyTest, SameResourcesAndStrategyShareAKey) {
  proto::TaskSpec a, b, c;
  (*a.mutable_resources())["CPU"] = 1;
  (*a.mutable_resources())["GPU"] = 1;
  (*b.mutable_resources())["GPU"] = 1;
  (*b.mutable_resources())["CPU"] = 1;
  b.set_function_name("other");
  c = a;
  c.mutable_strategy()->set_kind(proto::SchedulingStrategy::SPREAD);
  EXPECT_EQ(SchedulingKey(a), SchedulingKey(b));
  EXPECT_NE(SchedulingKey(a), SchedulingKey(c));
}

}  // namespace
}  // namespace lumen::worker

namespace lumen {
namespace {

std::string ProcessMetricsText() {
  return prometheus::TextSerializer().Serialize(rpc::ProcessRegistry().Collect());
}

TEST(UserMetricsTest, CountersGaugesAndHistogramsLandInTheProcessRegistry) {
  Counter calls("unit_calls_total", "Calls", "calls", {"route"});
  calls.Inc(2, {{"route", "/a"}});
  calls.Inc(1, {{"route", "/a"}});
  calls.Inc();  // the declared key left out: an empty label
  Gauge depth("unit_depth", "Depth");
  depth.Set(-4);
  Histogram sizes("unit_size_bytes", "Sizes", "bytes", {1, 10}, {"route"});
  sizes.Observe(5, {{"route", "/a"}});
  // A second declaration of the same metric shares its series.
  Counter again("unit_calls_total", "Calls", "calls", {"route"});
  again.Inc(1, {{"route", "/a"}});
  std::string text = ProcessMetricsText();
  EXPECT_NE(text.find("unit_calls_total{route=\"/a\"} 4"), std::string::npos) << text;
  EXPECT_NE(text.find("unit_calls_total{route=\"\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("unit_depth -4"), std::string::npos) << text;
  EXPECT_NE(text.find("unit_size_bytes_bucket{route=\"/a\",le=\"10\"} 1"), std::string::npos)
      << text;
  EXPECT_NE(text.find("# HELP unit_calls_total Calls (calls)"), std::string::npos) << text;
}

TEST(UserMetricsTest, MistakesThrowSayingWhat) {
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(nothing thrown)");
  };
  EXPECT_NE(message([] { Counter("bad name", ""); }).find("not a Prometheus name"),
            std::string::npos);
  EXPECT_NE(message([] { Counter("lumen_mine_total", ""); }).find("lumen's own"),
            std::string::npos);
  EXPECT_NE(message([] { Counter("unit_tagged_total", "", "", {"node_id"}); }).find("node_id"),
            std::string::npos);
  Counter c("unit_mistakes_total", "", "", {"route"});
  EXPECT_NE(message([&] { c.Inc(-1); }).find("only goes up"), std::string::npos);
  EXPECT_NE(message([&] {
              c.Inc(1, {{"rout", "x"}});
            }).find("tag 'rout' was not declared"),
            std::string::npos);
  EXPECT_NE(message([&] { c.Inc(std::nan("")); }).find("finite"), std::string::npos);
  EXPECT_NE(message([] { Gauge("unit_mistakes_total", ""); }).find("another kind"),
            std::string::npos);
  EXPECT_NE(message([] {
              Histogram("unit_h", "", "", {2, 1});
            }).find("increasing"),
            std::string::npos);
  EXPECT_NE(message([] { Histogram("unit_h2", "", "", {}); }).find("at least one"),
            std::string::npos);
}

}  // namespace
}  // namespace lumen
