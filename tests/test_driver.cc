// A driver for tests that need one as a separate process: joins the cluster
// at $LUMEN_ADDRESS, starts `n` tasks that wait on a file in `dir` (argv[1],
// argv[2]), prints "started" and waits for them. Tests kill it meanwhile.
#include <cstdlib>
#include <iostream>

#include "lumen/api.h"
#include "test_tasks.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: test_driver DIR N\n";
    return 2;
  }
  if (absl::Status s = lumen::Init(); !s.ok()) {
    std::cerr << s << "\n";
    return 1;
  }
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < std::atoi(argv[2]); ++i) {
    refs.push_back(lumen::Task(test_tasks::WaitForRelease).Remote(std::string(argv[1])));
  }
  std::cout << "started" << std::endl;
  auto done = lumen::Get(refs);
  lumen::Shutdown();
  return done.ok() ? 0 : 1;
}
