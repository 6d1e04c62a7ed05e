// Remote functions used by the integration tests; a real code package.
#include "test_tasks.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "lumen/api.h"

namespace test_tasks {
namespace fs = std::filesystem;

int Pid() { return static_cast<int>(::getpid()); }

std::string NodeOf() { return lumen::GetRuntimeContext().node.Hex(); }

int Add(int a, int b) { return a + b; }

static int CountEntries(const std::string& dir, const std::string& prefix) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().filename().string().rfind(prefix, 0) == 0) n++;
  }
  return n;
}

std::string Rendezvous(std::string dir, int n, int timeout_ms) {
  std::ofstream(dir + "/here." + std::to_string(::getpid())) << "x";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (CountEntries(dir, "here.") < n) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("rendezvous timed out: only " +
                               std::to_string(CountEntries(dir, "here.")) + " of " +
                               std::to_string(n) + " arrived");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return NodeOf();
}

uint64_t Checksum(const std::vector<uint32_t>& data) {
  uint64_t h = 1469598103934665603ull;
  for (uint32_t v : data) h = (h ^ v) * 1099511628211ull;
  return h ^ data.size();
}

std::string NodeOfData(const std::vector<uint32_t>& data) { return NodeOf(); }

std::vector<uint32_t> MakeData(int n, int seed) {
  std::vector<uint32_t> out(static_cast<size_t>(n));
  uint32_t x = static_cast<uint32_t>(seed) * 2654435761u + 1;
  for (auto& v : out) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    v = x;
  }
  return out;
}

int Throw(std::string message) { throw std::runtime_error(message); }

int WaitForRelease(std::string dir) {
  std::ofstream(dir + "/pid." + std::to_string(::getpid())) << ::getpid();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(dir + "/release")) {
    if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("never released");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return static_cast<int>(::getpid());
}

int NestedSum(int n) {
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < n; ++i) refs.push_back(lumen::Task(Add).Remote(i, i));
  auto values = lumen::Get(refs);
  if (!values.ok()) throw std::runtime_error(std::string(values.status().message()));
  int sum = 0;
  for (int v : *values) sum += v;
  return sum;
}

std::string Echo(std::string s) { return s; }

int NestedWaitSum(int n) {
  std::vector<lumen::ObjectRefBase> all;
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < n; ++i) {
    refs.push_back(lumen::Task(Add).Remote(i, i));
    all.push_back(refs.back());
  }
  auto waited = lumen::Wait(all, n);
  if (!waited.ok() || static_cast<int>(waited->ready.size()) != n) {
    throw std::runtime_error("Wait did not see every subtask finish");
  }
  auto values = lumen::Get(refs, 0);  // all ready: no wait
  if (!values.ok()) throw std::runtime_error(std::string(values.status().message()));
  int sum = 0;
  for (int v : *values) sum += v;
  return sum;
}

}  // namespace test_tasks

LUMEN_REMOTE(test_tasks::Pid, test_tasks::NodeOf, test_tasks::Add, test_tasks::Rendezvous,
             test_tasks::Checksum, test_tasks::MakeData, test_tasks::Throw,
             test_tasks::WaitForRelease, test_tasks::NestedSum, test_tasks::Echo,
             test_tasks::NestedWaitSum, test_tasks::NodeOfData);
