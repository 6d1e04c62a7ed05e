// Runs two tasks on a private local cluster (or on $LUMEN_ADDRESS).
#include <iostream>

#include "lumen/api.h"
#include "tasks.h"

int main() {
  if (absl::Status s = lumen::Init(); !s.ok()) {
    std::cerr << "lumen::Init: " << s << "\n";
    return 1;
  }
  auto r = lumen::Task(Add).Remote(1, 2);
  auto v = lumen::Put(std::vector<float>(1 << 24, 0.5f));
  auto s = lumen::Task(Sum).SetResource("CPU", 1).Remote(v);
  auto ready = lumen::Wait({r, s}, 2, 60'000);
  absl::StatusOr<int> x = lumen::Get(r);
  absl::StatusOr<double> total = lumen::Get(s);
  if (!x.ok() || !total.ok()) {
    std::cerr << "task failed: " << (x.ok() ? total.status() : x.status()) << "\n";
    lumen::Shutdown();
    return 1;
  }
  std::cout << "Add(1, 2) = " << *x << "\n"
            << "Sum of 2^24 halves = " << *total << "\n"
            << "ready: " << (ready.ok() ? ready->ready.size() : 0) << " of 2\n";
  lumen::Shutdown();
  return 0;
}
