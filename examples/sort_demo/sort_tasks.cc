// The sort demo's code package.
#include "sort_tasks.h"

#include <algorithm>

#include "lumen/api.h"

namespace sort_demo {

std::vector<uint32_t> Generate(int n, uint64_t seed) {
  std::vector<uint32_t> out(static_cast<size_t>(n));
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& v : out) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    v = static_cast<uint32_t>((x * 0x2545F4914F6CDD1Dull) >> 32);
  }
  return out;
}

std::vector<uint32_t> SortChunk(const std::vector<uint32_t>& data) {
  std::vector<uint32_t> out = data;
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<uint32_t> Merge(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  std::vector<uint32_t> out(a.size() + b.size());
  std::merge(a.begin(), a.end(), b.begin(), b.end(), out.begin());
  return out;
}

}  // namespace sort_demo

LUMEN_REMOTE(sort_demo::Generate, sort_demo::SortChunk, sort_demo::Merge);
