// Remote functions used by the integration tests; a real code package.
#include "test_tasks.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <thread>

#include "lumen/api.h"
#include "lumen/metrics.h"

namespace test_tasks {
namespace fs = std::filesystem;

int Pid() { return static_cast<int>(::getpid()); }

std::string NodeOf() { return lumen::GetRuntimeContext().node.Hex(); }

int Add(int a, int b) { return a + b; }

std::string Shout(std::string word) {
  std::cout << "shout-out: " << word << std::endl;
  std::cerr << "shout-err: " << word << std::endl;
  return NodeOf();
}

std::string CountCall(std::string route) {
  static lumen::Counter calls("test_task_calls_total", "Calls of CountCall", "calls", {"route"});
  static lumen::Gauge last("test_task_last_value", "The last value seen", "", {"route"});
  static lumen::Histogram sizes("test_task_route_bytes", "Length of the route", "bytes",
                                {1, 4, 16, 64}, {"route"});
  calls.Inc(1, {{"route", route}});
  last.Set(static_cast<double>(route.size()), {{"route", route}});
  sizes.Observe(static_cast<double>(route.size()), {{"route", route}});
  return NodeOf();
}

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

Counter* Counter::Create(int start) {
  auto* c = new Counter();
  c->value_ = start;
  return c;
}
int Counter::Add(int x) { return value_ += x; }
int Counter::Value() const { return value_; }
int Counter::Pid() const { return static_cast<int>(::getpid()); }
std::string Counter::Node() const { return NodeOf(); }
bool Counter::Restarted() const { return lumen::GetRuntimeContext().WasRestarted(); }
int Counter::Meet(std::string dir, int n) {
  // Calls share this process: mark with a name of the call's own.
  static std::atomic<int> calls{0};
  std::ofstream(dir + "/here." + std::to_string(::getpid()) + "." + std::to_string(++calls)) << "x";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (CountEntries(dir, "here.") < n) {
    if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("calls did not meet");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return n;
}
int Counter::Hold(std::string dir) {
  WaitForRelease(dir);
  return value_;
}

Broken* Broken::Create(std::string why) { throw std::invalid_argument(why); }
int Broken::Nothing() { return 0; }

int AddThrough(lumen::ActorHandle<Counter> counter, int x) {
  auto v = lumen::Get(counter.Task(&Counter::Add).Remote(x));
  if (!v.ok()) throw std::runtime_error(std::string(v.status().message()));
  return *v;
}

}  // namespace test_tasks

LUMEN_REMOTE(test_tasks::Counter::Create, &test_tasks::Counter::Add, &test_tasks::Counter::Value,
             &test_tasks::Counter::Pid, &test_tasks::Counter::Node, &test_tasks::Counter::Restarted,
             &test_tasks::Counter::Meet, &test_tasks::Counter::Hold, test_tasks::Broken::Create,
             &test_tasks::Broken::Nothing, test_tasks::AddThrough);

LUMEN_REMOTE(test_tasks::Pid, test_tasks::NodeOf, test_tasks::Add, test_tasks::Rendezvous,
             test_tasks::Checksum, test_tasks::MakeData, test_tasks::Throw,
             test_tasks::WaitForRelease, test_tasks::NestedSum, test_tasks::Echo,
             test_tasks::NestedWaitSum, test_tasks::NodeOfData, test_tasks::CountCall,
             test_tasks::Shout);
