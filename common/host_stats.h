// What the machine itself is doing, read from /proc: CPU utilization since
// the last reading and memory in use. Node managers send it with every
// report to the GCS (NodeStats), for the dashboard's charts and `lumen get
// node`. Not thread-safe: one reader.
#pragma once

#include <cstdint>
#include <string_view>

namespace lumen {

struct HostStats {
  double cpu_percent = 0;  // of all the machine's CPUs, since the previous Read()
  int32_t num_cpus = 0;
  int64_t mem_total_bytes = 0;
  int64_t mem_used_bytes = 0;  // MemTotal - MemAvailable
};

class HostStatsReader {
 public:
  // The first reading's cpu_percent is 0 (nothing to compare with).
  HostStats Read();

 private:
  uint64_t last_busy_ = 0;
  uint64_t last_total_ = 0;
};

// Parsers of /proc's text, for tests: the aggregate "cpu" line of
// /proc/stat as busy and total jiffies; MemTotal and MemAvailable in bytes.
bool ParseProcStat(std::string_view text, uint64_t* busy, uint64_t* total);
bool ParseMemInfo(std::string_view text, int64_t* total_bytes, int64_t* available_bytes);

}  // namespace lumen
