// Remote functions used by the integration tests (libtest_tasks.so).
#pragma once

#include <cstdint>

#include <string>
#include <vector>
#include "lumen/api.h"

namespace test_tasks {

int Pid();
std::string NodeOf();
// Counts the call in user metrics (lumen/metrics.h) tagged with `route`;
// returns the node it ran on.
std::string CountCall(std::string route);
// Prints "shout-out: WORD" to stdout and "shout-err: WORD" to stderr.
std::string Shout(std::string word);
int Add(int a, int b);
// Marks `dir` with this process and waits (up to timeout_ms) until `n`
// processes did; returns this task's node id. Fails on timeout.
std::string Rendezvous(std::string dir, int n, int timeout_ms);
uint64_t Checksum(const std::vector<uint32_t>& data);
// The node this ran on (the data is only there to be moved, or not).
std::string NodeOfData(const std::vector<uint32_t>& data);
std::vector<uint32_t> MakeData(int n, int seed);
int Throw(std::string message);
// Writes its pid to dir/pid.<pid>, then waits for dir/release; returns its pid.
int WaitForRelease(std::string dir);
// Sums Add(i, i) for i < n through nested tasks.
int NestedSum(int n);
std::string Echo(std::string s);
// Like NestedSum, but waits for the subtasks with Wait before Get.
int NestedWaitSum(int n);

// An actor with state, and probes of where and how it runs.
class Counter {
 public:
  static Counter* Create(int start);
  int Add(int x);
  int Value() const;
  int Pid() const;
  std::string Node() const;
  bool Restarted() const;
  // Marks `dir` and waits until `n` calls did (needs calls at once).
  int Meet(std::string dir, int n);
  // Waits for dir/release (like WaitForRelease); returns the value.
  int Hold(std::string dir);

 private:
  int value_ = 0;
};

// A factory that throws.
class Broken {
 public:
  static Broken* Create(std::string why);
  int Nothing();
};

// Adds `x` through an actor handle passed as an argument.
int AddThrough(lumen::ActorHandle<Counter> counter, int x);

}  // namespace test_tasks
