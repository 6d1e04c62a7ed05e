// A driver for tests that need one as a separate process: joins the cluster
// at $LUMEN_ADDRESS, starts `n` tasks that wait on a file in `dir` (argv[1],
// argv[2]), prints "started" and waits for them. Tests kill it meanwhile.
// `test_driver shout WORD DIR`: runs test_tasks::Shout(WORD), then waits
// for DIR/release (the test saw the task's output reach this driver).
// `test_driver quick N`: prints "job=ID", runs N tasks, exits at once.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>

#include "lumen/api.h"
#include "test_tasks.h"

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "shout") {
    if (absl::Status s = lumen::Init(); !s.ok()) {
      std::cerr << s << "\n";
      return 1;
    }
    auto node = lumen::Get(lumen::Task(test_tasks::Shout).Remote(std::string(argv[2])), 60'000);
    std::cout << "shout ran: " << (node.ok() ? "ok" : node.status().ToString()) << std::endl;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!std::filesystem::exists(std::string(argv[3]) + "/release") &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    lumen::Shutdown();
    return node.ok() ? 0 : 1;
  }
  if (argc == 3 && std::string(argv[1]) == "quick") {
    if (absl::Status s = lumen::Init(); !s.ok()) {
      std::cerr << s << "\n";
      return 1;
    }
    std::cout << "job=" << lumen::GetRuntimeContext().job.Hex() << std::endl;
    std::vector<lumen::ObjectRef<int>> refs;
    for (int i = 0; i < std::atoi(argv[2]); ++i)
      refs.push_back(lumen::Task(test_tasks::Add).Remote(i, 1));
    for (auto& r : refs) {
      if (!lumen::Get(r, 60'000).ok()) return 1;
    }
    lumen::Shutdown();
    return 0;
  }
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
