// Remote functions used by the integration tests (libtest_tasks.so).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace test_tasks {

int Pid();
std::string NodeOf();
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

}  // namespace test_tasks
