// The dashboard's parsers of what comes from outside: Cookie headers, the
// Jobs API's entrypoint line, and the serve proxies' /metrics text. Pure
// functions with no lumen dependencies, fuzzed by fuzz/fuzz_dashboard.cc.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lumen::dashboard {

// The value of cookie `name` in a Cookie header; empty when it is absent.
std::string CookieValue(std::string_view header, std::string_view name);

// A Jobs API entrypoint (one command line, as Ray takes it) as argv: words
// split on blanks, with '...' and "..." quoting and \ escapes, when the line
// is a plain command; {"/bin/sh", "-c", line} when it uses shell syntax
// (pipes, redirections, variables, `;`, `&&`, globs). Empty when the line
// has no command or its quotes do not close.
std::vector<std::string> EntrypointArgv(std::string_view line);

// What one proxy's /metrics says about one deployment (serve/metrics.h's
// series, summed over protocols and status codes).
struct ServeCounters {
  double requests = 0;
  double errors = 0;
  double latency_sum_s = 0;
  double latency_count = 0;
  std::map<double, double> buckets;  // upper bound (s) -> cumulative count
};
using ServeKey = std::pair<std::string, std::string>;  // application, deployment
// Adds the figures of `text` into `out`. Lines that are not serve's series
// or do not parse are skipped; at most 4096 deployments are kept.
void AddServeMetrics(std::string_view text, std::map<ServeKey, ServeCounters>* out);

// The q-quantile (0..1) of a histogram's cumulative buckets, interpolated
// within the bucket it falls in; 0 when the histogram is empty.
double HistogramQuantile(const std::map<double, double>& buckets, double q);

}  // namespace lumen::dashboard
