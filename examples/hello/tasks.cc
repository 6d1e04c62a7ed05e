// The hello example's code package: plain functions, registered by name.
#include "tasks.h"

#include <numeric>

#include "lumen/api.h"

int Add(int a, int b) { return a + b; }

double Sum(const std::vector<float>& values) {
  return std::accumulate(values.begin(), values.end(), 0.0);
}

LUMEN_REMOTE(Add, Sum);
