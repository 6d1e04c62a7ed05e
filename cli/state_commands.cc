// `lumen list|get|summary`: the cluster's state (state/state_api.h: the
// GCS's nodes, jobs, actors, placement groups and task events; the node
// managers' workers and objects), as tables or JSON.
#include <ctime>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "cli/commands.h"
#include "nlohmann/json.hpp"
#include "state/state_api.h"

namespace lumen::cli {
namespace {

using Json = nlohmann::json;

void Print(const Json& rows, const std::vector<std::pair<std::string, int>>& columns) {
  for (const auto& [name, width] : columns) {
    bool time = name.size() > 3 && name.compare(name.size() - 3, 3, "_ms") == 0;
    std::string header = absl::AsciiStrToUpper(time ? name.substr(0, name.size() - 3) : name);
    std::cout << std::left << std::setw(width) << header;
  }
  std::cout << "\n";
  for (const auto& row : rows) {
    for (const auto& [name, width] : columns) {
      const Json& v = row.contains(name) ? row[name] : Json();
      std::string text = v.is_string() ? v.get<std::string>() : v.is_null() ? "" : v.dump();
      if (name.size() > 3 && name.compare(name.size() - 3, 3, "_id") == 0) {
        text = text.substr(0, 12);
      }
      if (name.size() > 3 && name.compare(name.size() - 3, 3, "_ms") == 0) {
        text = UtcTime(v.is_number() ? v.get<int64_t>() : 0, "%H:%M:%S");
      }
      if (static_cast<int>(text.size()) >= width) text = text.substr(0, width - 2) + "…";
      std::cout << std::left << std::setw(width) << text;
    }
    std::cout << "\n";
  }
}

absl::StatusOr<std::unique_ptr<state::ClusterState>> Connect(const StateFlags& f) {
  auto address = ClusterAddress(f.address);
  if (!address.ok()) return address.status();
  return std::make_unique<state::ClusterState>(*address, ResolveToken(f.token));
}

int Dump(const Json& value) {
  std::cout << value.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  return 0;
}

}  // namespace

int List(const StateFlags& f) {
  auto c = Connect(f);
  if (!c.ok()) return Fail(std::string(c.status().message()));
  auto got = (*c)->List(f.kind, f.filters, f.limit);
  if (!got.ok()) return Fail(std::string(got.status().message()));
  static const std::map<std::string, std::vector<std::pair<std::string, int>>> kColumns = {
      {"tasks",
       {{"task_id", 14},
        {"name", 28},
        {"state", 10},
        {"attempt", 9},
        {"node_id", 14},
        {"pid", 9},
        {"submitted_ms", 11},
        {"error", 50}}},
      {"actors",
       {{"actor_id", 14},
        {"class_name", 24},
        {"name", 16},
        {"state", 12},
        {"node_id", 14},
        {"num_restarts", 14},
        {"death_cause", 50}}},
      {"nodes",
       {{"node_id", 14}, {"address", 22}, {"state", 8}, {"is_head", 9}, {"death_reason", 40}}},
      {"jobs",
       {{"job_id", 12},
        {"status", 10},
        {"driver_pid", 12},
        {"start_time_ms", 15},
        {"end_time_ms", 13},
        {"entrypoint", 40}}},
      {"workers",
       {{"worker_id", 14},
        {"node_id", 14},
        {"pid", 9},
        {"job_id", 10},
        {"state", 10},
        {"actor_id", 14},
        {"stdout", 50}}},
      {"objects", {{"object_id", 42}, {"node_id", 14}, {"size", 12}}},
      {"placement-groups",
       {{"placement_group_id", 20}, {"name", 16}, {"state", 14}, {"strategy", 15}, {"error", 40}}}};
  if (f.json) return Dump(got->rows);
  auto columns = kColumns.find(f.kind);
  Print(got->rows, columns == kColumns.end() ? kColumns.at("placement-groups") : columns->second);
  if (!got->note.empty()) std::cout << "\n" << got->note << "\n";
  return 0;
}

int Get(const StateFlags& f) {
  auto c = Connect(f);
  if (!c.ok()) return Fail(std::string(c.status().message()));
  auto got = (*c)->Get(f.kind, f.id);
  if (!got.ok()) return Fail(std::string(got.status().message()));
  return Dump(*got);
}

int Summary(const StateFlags& f) {
  auto c = Connect(f);
  if (!c.ok()) return Fail(std::string(c.status().message()));
  std::string note;
  auto got = (*c)->Summary(f.kind, f.filters, &note);
  if (!got.ok()) return Fail(std::string(got.status().message()));
  if (!note.empty()) std::cerr << note;
  if (f.json) return Dump(*got);
  std::set<std::string> states;
  for (const auto& [name, by] : got->items()) {
    for (const auto& [state, n] : by.items()) states.insert(state);
  }
  std::cout << std::left << std::setw(36)
            << (f.kind == "tasks"     ? "FUNCTION"
                : f.kind == "objects" ? "NODE"
                                      : "CLASS");
  for (const auto& s : states) std::cout << std::setw(12) << s;
  std::cout << "\n";
  for (const auto& [name, by] : got->items()) {
    std::cout << std::setw(36) << name;
    for (const auto& s : states) std::cout << std::setw(12) << by.value(s, int64_t{0});
    std::cout << "\n";
  }
  return 0;
}

std::string UtcTime(int64_t ms, const char* format) {
  if (ms <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::ostringstream out;
  out << std::put_time(&tm, format);
  return out.str();
}

}  // namespace lumen::cli
