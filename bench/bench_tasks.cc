// The microbenchmark's code package.
#include "bench_tasks.h"

namespace bench {

int Noop(int x) { return x; }
std::vector<float> MakeFloats(int n) { return std::vector<float>(static_cast<size_t>(n), 1.5f); }

Target* Target::Create() { return new Target(); }
int Target::Ping(int x) { return x; }

Caller* Caller::Create() { return new Caller(); }
int Caller::Run(std::vector<lumen::ActorHandle<Target>> targets, int calls) {
  std::vector<lumen::ObjectRef<int>> refs;
  refs.reserve(calls);
  for (int i = 0; i < calls; ++i) {
    refs.push_back(targets[i % targets.size()].Task(&Target::Ping).Remote(i));
  }
  auto done = lumen::Get(refs);
  return done.ok() ? static_cast<int>(done->size()) : 0;
}

}  // namespace bench

LUMEN_REMOTE(bench::Noop, bench::MakeFloats, bench::Target::Create, &bench::Target::Ping,
             bench::Caller::Create, &bench::Caller::Run);
