// The microbenchmark's code package.
#include "bench_tasks.h"

#include "lumen/api.h"

namespace bench {
int Noop(int x) { return x; }
std::vector<float> MakeFloats(int n) { return std::vector<float>(static_cast<size_t>(n), 1.5f); }
}  // namespace bench

LUMEN_REMOTE(bench::Noop, bench::MakeFloats);
