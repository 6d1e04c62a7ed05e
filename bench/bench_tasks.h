// Remote functions and actors for the microbenchmark.
#pragma once

#include <cstdint>
#include <vector>

#include "lumen/api.h"

namespace bench {

int Noop(int x);
std::vector<float> MakeFloats(int n);

// The actor every call benchmark calls.
class Target {
 public:
  static Target* Create();
  int Ping(int x);
};

// An actor that calls targets itself (n:n benchmark).
class Caller {
 public:
  static Caller* Create();
  // Makes `calls` calls spread over `targets`, waits for them, returns how many succeeded.
  int Run(std::vector<lumen::ActorHandle<Target>> targets, int calls);
};

}  // namespace bench
