#include "dashboard/parse.h"

#include <cmath>
#include <cstdlib>
#include <limits>

namespace lumen::dashboard {
namespace {

constexpr size_t kMaxDeployments = 4096;

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsBlank(s.back())) s.remove_suffix(1);
  return s;
}

// A finite number, or +Inf as Prometheus writes the last bucket's bound.
bool ToNumber(std::string_view text, double* out) {
  if (text.empty() || text.size() > 64) return false;
  if (text == "+Inf") {
    *out = std::numeric_limits<double>::infinity();
    return true;
  }
  std::string copy(text);
  char* end = nullptr;
  double v = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

// Parses `{k="v",...}` from the start of `s`; false when malformed.
bool ParseLabels(std::string_view& s, std::map<std::string, std::string>* labels) {
  if (s.empty() || s.front() != '{') return true;  // no labels
  size_t i = 1;
  while (i < s.size() && s[i] != '}') {
    size_t eq = s.find('=', i);
    if (eq == std::string_view::npos || eq + 1 >= s.size() || s[eq + 1] != '"') return false;
    std::string key(Trim(s.substr(i, eq - i)));
    std::string value;
    size_t j = eq + 2;
    for (; j < s.size() && s[j] != '"'; ++j) {
      if (s[j] == '\\' && j + 1 < s.size()) {
        ++j;
        value.push_back(s[j] == 'n' ? '\n' : s[j]);
      } else {
        value.push_back(s[j]);
      }
    }
    if (j >= s.size()) return false;  // no closing quote
    if (labels->size() < 16) (*labels)[key] = std::move(value);
    i = j + 1;
    if (i < s.size() && s[i] == ',') ++i;
  }
  if (i >= s.size()) return false;
  s.remove_prefix(i + 1);
  return true;
}

}  // namespace

std::string CookieValue(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    size_t semi = header.find(';');
    std::string_view pair = Trim(header.substr(0, semi));
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos) continue;
    if (Trim(pair.substr(0, eq)) != name) continue;
    std::string_view value = Trim(pair.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    return std::string(value);
  }
  return "";
}

std::vector<std::string> EntrypointArgv(std::string_view line) {
  line = Trim(line);
  if (line.empty()) return {};
  static constexpr std::string_view kShell = "|&;<>()$`*?[]{}~#!\n";
  std::vector<std::string> argv;
  std::string word;
  bool in_word = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (IsBlank(c)) {
      if (in_word) argv.push_back(std::move(word));
      word.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\\') {
      if (++i >= line.size()) return {};
      word.push_back(line[i]);
    } else if (c == '\'' || c == '"') {
      size_t close = line.find(c, i + 1);
      if (close == std::string_view::npos) return {};
      std::string_view quoted = line.substr(i + 1, close - i - 1);
      // Double quotes expand $ and backquotes in a shell: leave those to it.
      if (c == '"' && quoted.find_first_of("$`\\") != std::string_view::npos) {
        return {"/bin/sh", "-c", std::string(line)};
      }
      word.append(quoted);
      i = close;
    } else if (kShell.find(c) != std::string_view::npos || (c == '=' && argv.empty())) {
      return {"/bin/sh", "-c", std::string(line)};  // shell syntax (or VAR=value cmd)
    } else {
      word.push_back(c);
    }
  }
  if (in_word) argv.push_back(std::move(word));
  return argv;
}

void AddServeMetrics(std::string_view text, std::map<ServeKey, ServeCounters>* out) {
  static constexpr std::string_view kPrefix = "lumen_serve_";
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.substr(0, kPrefix.size()) != kPrefix) continue;
    size_t name_end = line.find_first_of("{ ");
    if (name_end == std::string_view::npos) continue;
    std::string_view name = line.substr(kPrefix.size(), name_end - kPrefix.size());
    std::string_view rest = line.substr(name_end);
    std::map<std::string, std::string> labels;
    if (!ParseLabels(rest, &labels)) continue;
    rest = Trim(rest);
    size_t blank = rest.find(' ');  // a timestamp may follow
    double value = 0;
    if (!ToNumber(rest.substr(0, blank), &value)) continue;
    auto app = labels.find("app");
    auto deployment = labels.find("deployment");
    if (app == labels.end() || deployment == labels.end()) continue;
    ServeKey key{app->second, deployment->second};
    auto it = out->find(key);
    if (it == out->end()) {
      if (out->size() >= kMaxDeployments) continue;
      it = out->emplace(std::move(key), ServeCounters()).first;
    }
    ServeCounters& c = it->second;
    if (name == "requests_total") {
      c.requests += value;
    } else if (name == "errors_total") {
      c.errors += value;
    } else if (name == "request_latency_seconds_sum") {
      c.latency_sum_s += value;
    } else if (name == "request_latency_seconds_count") {
      c.latency_count += value;
    } else if (name == "request_latency_seconds_bucket") {
      auto le = labels.find("le");
      double bound = 0;
      if (le == labels.end() || !ToNumber(le->second, &bound)) continue;
      if (c.buckets.size() < 64 || c.buckets.count(bound)) c.buckets[bound] += value;
    }
  }
}

double HistogramQuantile(const std::map<double, double>& buckets, double q) {
  if (buckets.empty()) return 0;
  double total = buckets.rbegin()->second;
  if (!(total > 0)) return 0;
  double rank = q * total;
  double lower = 0, below = 0;
  for (const auto& [bound, cumulative] : buckets) {
    if (cumulative >= rank) {
      if (std::isinf(bound)) return lower;  // past the last finite bound
      double in_bucket = cumulative - below;
      double frac = in_bucket > 0 ? (rank - below) / in_bucket : 1;
      return lower + (bound - lower) * frac;
    }
    lower = bound;
    below = cumulative;
  }
  return lower;
}

}  // namespace lumen::dashboard
