// lumen's microbenchmark: task and object throughput on a local cluster of
// two node processes (names follow `ray microbenchmark` where they match).
//
//   build/release/bin/microbenchmark [--benchmark_filter=...]
//
// Runs against $LUMEN_ADDRESS instead when it is set. Results and the
// machine they came from are in docs/benchmarks.md.
#include <vector>

#include "bench_tasks.h"
#include "benchmark/benchmark.h"
#include "lumen/api.h"

namespace {

constexpr int kLarge = 16 << 20;  // floats: 64 MiB

void single_client_tasks_sync(benchmark::State& state) {
  for (auto _ : state) {
    auto v = lumen::Get(lumen::Task(bench::Noop).Remote(1));
    if (!v.ok()) state.SkipWithError(std::string(v.status().message()).c_str());
  }
  state.SetItemsProcessed(state.iterations());
}

void single_client_tasks_async(benchmark::State& state) {
  const int batch = 1000;
  for (auto _ : state) {
    std::vector<lumen::ObjectRef<int>> refs;
    refs.reserve(batch);
    for (int i = 0; i < batch; ++i) refs.push_back(lumen::Task(bench::Noop).Remote(i));
    auto v = lumen::Get(refs);
    if (!v.ok()) state.SkipWithError(std::string(v.status().message()).c_str());
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void single_client_put_calls(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(lumen::Put(42));
  state.SetItemsProcessed(state.iterations());
}

void single_client_get_calls(benchmark::State& state) {
  auto ref = lumen::Put(42);
  for (auto _ : state) benchmark::DoNotOptimize(lumen::Get(ref));
  state.SetItemsProcessed(state.iterations());
}

void single_client_wait_1k_refs(benchmark::State& state) {
  std::vector<lumen::ObjectRefBase> refs;
  for (int i = 0; i < 1000; ++i) refs.push_back(lumen::Put(i));
  for (auto _ : state) benchmark::DoNotOptimize(lumen::Wait(refs, 1000));
  state.SetItemsProcessed(state.iterations());
}

void single_client_put_gigabytes(benchmark::State& state) {
  std::vector<float> data(kLarge, 0.5f);
  for (auto _ : state) benchmark::DoNotOptimize(lumen::Put(data));
  state.SetBytesProcessed(state.iterations() * int64_t{kLarge} * 4);
}

void single_client_get_gigabytes(benchmark::State& state) {
  auto ref = lumen::Put(std::vector<float>(kLarge, 0.5f));
  for (auto _ : state) {
    auto v = lumen::Get(ref);
    if (!v.ok()) state.SkipWithError(std::string(v.status().message()).c_str());
  }
  state.SetBytesProcessed(state.iterations() * int64_t{kLarge} * 4);
}

// The same object read in place (lumen::GetArray): no copy at all.
void single_client_get_array_gigabytes(benchmark::State& state) {
  auto ref = lumen::Put(std::vector<float>(kLarge, 0.5f));
  for (auto _ : state) {
    auto v = lumen::GetArray(ref);
    if (!v.ok()) state.SkipWithError(std::string(v.status().message()).c_str());
    benchmark::DoNotOptimize(v->data());
  }
  state.SetBytesProcessed(state.iterations() * int64_t{kLarge} * 4);
}

// A task on the second node makes 64 MiB; the driver pulls it over.
void cross_node_transfer_gigabytes(benchmark::State& state) {
  auto nodes = lumen::Nodes();
  lumen::NodeId other;
  for (const auto& n : *nodes) {
    if (!n.is_head) other = n.id;
  }
  for (auto _ : state) {
    state.PauseTiming();
    auto ref = lumen::Task(bench::MakeFloats)
                   .SetSchedulingStrategy(lumen::SchedulingStrategy::NodeAffinity(other))
                   .Remote(kLarge);
    (void)lumen::Wait({ref}, 1);
    state.ResumeTiming();
    auto v = lumen::Get(ref);
    if (!v.ok()) state.SkipWithError(std::string(v.status().message()).c_str());
  }
  state.SetBytesProcessed(state.iterations() * int64_t{kLarge} * 4);
}

// ---- actors ----

constexpr int kAsyncBatch = 10'000;

lumen::ActorHandle<bench::Target> ReadyTarget(int concurrency = 1) {
  auto t = lumen::Actor(bench::Target::Create).SetMaxConcurrency(concurrency).Remote();
  (void)t.Ready();
  return t;
}

void Fail(benchmark::State& state, const absl::Status& s) {
  state.SkipWithError(std::string(s.message()).c_str());
}

void AsyncCalls(benchmark::State& state, const std::vector<lumen::ActorHandle<bench::Target>>& to) {
  for (auto _ : state) {
    std::vector<lumen::ObjectRef<int>> refs;
    refs.reserve(kAsyncBatch);
    for (int i = 0; i < kAsyncBatch; ++i) {
      refs.push_back(to[i % to.size()].Task(&bench::Target::Ping).Remote(i));
    }
    auto v = lumen::Get(refs);
    if (!v.ok()) Fail(state, v.status());
  }
  state.SetItemsProcessed(state.iterations() * kAsyncBatch);
}

void actor_calls_1_1_sync(benchmark::State& state) {
  auto t = ReadyTarget();
  for (auto _ : state) {
    auto v = lumen::Get(t.Task(&bench::Target::Ping).Remote(1));
    if (!v.ok()) Fail(state, v.status());
  }
  state.SetItemsProcessed(state.iterations());
  (void)lumen::Kill(t);
}

void actor_calls_1_1_async(benchmark::State& state) {
  auto t = ReadyTarget();
  AsyncCalls(state, {t});
  (void)lumen::Kill(t);
}

void actor_calls_1_1_concurrent(benchmark::State& state) {
  auto t = ReadyTarget(/*concurrency=*/8);
  AsyncCalls(state, {t});
  (void)lumen::Kill(t);
}

void actor_calls_1_n_async(benchmark::State& state) {
  std::vector<lumen::ActorHandle<bench::Target>> targets;
  for (int i = 0; i < 4; ++i) targets.push_back(ReadyTarget());
  AsyncCalls(state, targets);
  for (auto& t : targets) (void)lumen::Kill(t);
}

// n caller actors each spread calls over n target actors.
void actor_calls_n_n_async(benchmark::State& state) {
  const int n = 2, calls = 10'000;
  std::vector<lumen::ActorHandle<bench::Target>> targets;
  std::vector<lumen::ActorHandle<bench::Caller>> callers;
  for (int i = 0; i < n; ++i) {
    targets.push_back(ReadyTarget());
    callers.push_back(lumen::Actor(bench::Caller::Create).Remote());
    (void)callers.back().Ready();
  }
  for (auto _ : state) {
    std::vector<lumen::ObjectRef<int>> runs;
    for (auto& c : callers) runs.push_back(c.Task(&bench::Caller::Run).Remote(targets, calls));
    auto v = lumen::Get(runs);
    if (!v.ok()) Fail(state, v.status());
  }
  state.SetItemsProcessed(state.iterations() * n * calls);
  for (auto& a : targets) (void)lumen::Kill(a);
  for (auto& a : callers) (void)lumen::Kill(a);
}

void actor_creation(benchmark::State& state) {
  const int batch = 20;
  for (auto _ : state) {
    std::vector<lumen::ActorHandle<bench::Target>> made;
    for (int i = 0; i < batch; ++i) made.push_back(lumen::Actor(bench::Target::Create).Remote());
    for (auto& a : made) {
      if (absl::Status s = a.Ready(); !s.ok()) Fail(state, s);
    }
    state.PauseTiming();
    for (auto& a : made) (void)lumen::Kill(a);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

// Ray's placement_group_create/removal: a batch of one-bundle groups made,
// waited for and removed; items are groups.
void placement_group_create_removal(benchmark::State& state) {
  const int batch = 100;
  for (auto _ : state) {
    std::vector<lumen::PlacementGroup> made;
    for (int i = 0; i < batch; ++i) {
      auto pg = lumen::CreatePlacementGroup({{{{"CPU", 0.001}}}});
      if (!pg.ok()) return Fail(state, pg.status());
      made.push_back(*pg);
    }
    for (auto& pg : made) {
      if (absl::Status s = pg.Wait(30'000); !s.ok()) return Fail(state, s);
    }
    for (auto& pg : made) {
      if (absl::Status s = lumen::RemovePlacementGroup(pg); !s.ok()) return Fail(state, s);
    }
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

BENCHMARK(actor_calls_1_1_sync)->UseRealTime()->MinTime(2);
BENCHMARK(actor_calls_1_1_async)->UseRealTime()->MinTime(3);
BENCHMARK(actor_calls_1_1_concurrent)->UseRealTime()->MinTime(3);
BENCHMARK(actor_calls_1_n_async)->UseRealTime()->MinTime(3);
BENCHMARK(actor_calls_n_n_async)->UseRealTime()->MinTime(3);
BENCHMARK(actor_creation)->UseRealTime()->MinTime(3);
BENCHMARK(placement_group_create_removal)->UseRealTime()->MinTime(3);

BENCHMARK(single_client_tasks_sync)->UseRealTime()->MinTime(2);
BENCHMARK(single_client_tasks_async)->UseRealTime()->MinTime(3);
BENCHMARK(single_client_put_calls)->UseRealTime()->MinTime(1);
BENCHMARK(single_client_get_calls)->UseRealTime()->MinTime(1);
BENCHMARK(single_client_wait_1k_refs)->UseRealTime()->MinTime(1);
BENCHMARK(single_client_put_gigabytes)->UseRealTime()->MinTime(2);
BENCHMARK(single_client_get_gigabytes)->UseRealTime()->MinTime(2);
BENCHMARK(single_client_get_array_gigabytes)->UseRealTime()->MinTime(2);
BENCHMARK(cross_node_transfer_gigabytes)->UseRealTime()->MinTime(2);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  lumen::Config config;
  config.local_nodes = 2;
  config.local_object_store_memory = int64_t{1} << 30;
  if (absl::Status s = lumen::Init(config); !s.ok()) {
    std::fprintf(stderr, "lumen::Init: %s\n", s.ToString().c_str());
    return 1;
  }
  // Warm up: start the workers before measuring.
  std::vector<lumen::ObjectRef<int>> warm;
  for (int i = 0; i < 100; ++i) warm.push_back(lumen::Task(bench::Noop).Remote(i));
  (void)lumen::Get(warm);
  benchmark::RunSpecifiedBenchmarks();
  lumen::Shutdown();
  benchmark::Shutdown();
  return 0;
}
