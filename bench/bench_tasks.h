// Remote functions for the microbenchmark.
#pragma once

#include <cstdint>
#include <vector>

namespace bench {
int Noop(int x);
std::vector<float> MakeFloats(int n);
}  // namespace bench
