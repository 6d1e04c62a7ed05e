#include "common/host_stats.h"

#include <unistd.h>

#include <sstream>
#include <string>

#include "common/file_util.h"

namespace lumen {

bool ParseProcStat(std::string_view text, uint64_t* busy, uint64_t* total) {
  if (text.substr(0, 4) != "cpu ") return false;
  std::istringstream in(std::string(text.substr(4, text.find('\n'))));
  // user nice system idle iowait irq softirq steal (guest counted in user)
  uint64_t v[8] = {};
  int n = 0;
  while (n < 8 && in >> v[n]) ++n;
  if (n < 4) return false;
  uint64_t idle = v[3] + v[4];
  *total = 0;
  for (int i = 0; i < n; ++i) *total += v[i];
  *busy = *total - idle;
  return true;
}

bool ParseMemInfo(std::string_view text, int64_t* total_bytes, int64_t* available_bytes) {
  bool total = false, available = false;
  std::istringstream in{std::string(text)};
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string key;
    int64_t kib = 0;
    if (!(fields >> key >> kib)) continue;
    if (key == "MemTotal:") {
      *total_bytes = kib * 1024;
      total = true;
    } else if (key == "MemAvailable:") {
      *available_bytes = kib * 1024;
      available = true;
    }
  }
  return total && available;
}

HostStats HostStatsReader::Read() {
  HostStats s;
  long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  s.num_cpus = cpus > 0 ? static_cast<int32_t>(cpus) : 0;
  uint64_t busy = 0, total = 0;
  if (auto stat = ReadFile("/proc/stat"); stat.ok() && ParseProcStat(*stat, &busy, &total)) {
    if (last_total_ > 0 && total > last_total_ && busy >= last_busy_) {
      s.cpu_percent =
          100.0 * static_cast<double>(busy - last_busy_) / static_cast<double>(total - last_total_);
    }
    last_busy_ = busy;
    last_total_ = total;
  }
  int64_t mem_total = 0, available = 0;
  if (auto mem = ReadFile("/proc/meminfo");
      mem.ok() && ParseMemInfo(*mem, &mem_total, &available)) {
    s.mem_total_bytes = mem_total;
    s.mem_used_bytes = mem_total - available;
  }
  return s;
}

}  // namespace lumen
