// Fuzzes the dashboard's parsers (dashboard/parse.cc): a Cookie header and
// a Jobs API entrypoint from anyone who reaches the dashboard, and the
// serve proxies' /metrics text it reads. The same bytes go to each.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "dashboard/parse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string value = lumen::dashboard::CookieValue(in, "lumen_session");
  if (value.size() > in.size()) __builtin_trap();
  auto argv = lumen::dashboard::EntrypointArgv(in);
  // A plain split never grows the line; the shell form keeps it whole.
  size_t total = 0;
  for (const auto& a : argv) total += a.size();
  if (argv.size() == 3 && argv[0] == "/bin/sh") {
    if (argv[1] != "-c") __builtin_trap();
  } else if (total > in.size()) {
    __builtin_trap();
  }
  std::map<lumen::dashboard::ServeKey, lumen::dashboard::ServeCounters> counters;
  lumen::dashboard::AddServeMetrics(in, &counters);
  if (counters.size() > 4096) __builtin_trap();
  for (const auto& [key, c] : counters) {
    for (double q : {0.0, 0.5, 0.99, 1.0}) {
      double v = lumen::dashboard::HistogramQuantile(c.buckets, q);
      if (std::isnan(v)) __builtin_trap();
    }
  }
  return 0;
}
