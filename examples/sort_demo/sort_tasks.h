// Remote functions of the sort demo.
#pragma once

#include <cstdint>
#include <vector>

namespace sort_demo {

// `n` pseudo-random numbers from `seed` (the same every time).
std::vector<uint32_t> Generate(int n, uint64_t seed);
std::vector<uint32_t> SortChunk(const std::vector<uint32_t>& data);
std::vector<uint32_t> Merge(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b);

}  // namespace sort_demo
