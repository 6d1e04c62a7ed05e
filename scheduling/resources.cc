// ResourceSet; see resources.h.
#include "scheduling/resources.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "nlohmann/json.hpp"

namespace lumen {
namespace {

constexpr double kMaxAmount = 1e15;

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 128) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == ':' ||
           c == '-' || c == '/';
  });
}

std::string FormatAmount(int64_t fixed) {
  std::ostringstream out;
  out << static_cast<double>(fixed) / ResourceSet::kUnit;
  return out.str();
}

}  // namespace

absl::StatusOr<ResourceSet> ResourceSet::FromMap(const std::map<std::string, double>& amounts) {
  ResourceSet set;
  for (const auto& [name, amount] : amounts) {
    if (!ValidName(name)) {
      return absl::InvalidArgumentError("bad resource name '" + name +
                                        "': use letters, digits and _ . : - /");
    }
    if (!std::isfinite(amount) || amount < 0 || amount > kMaxAmount) {
      return absl::InvalidArgumentError("resource " + name + " has a bad amount " +
                                        std::to_string(amount) + ": want a number >= 0");
    }
    set.Set(name, amount);
  }
  return set;
}

absl::StatusOr<ResourceSet> ResourceSet::FromJson(const std::string& json) {
  nlohmann::json parsed = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return absl::InvalidArgumentError(
        "resources must be a JSON object such as "
        "'{\"CPU\": 4, \"GPU\": 1}', got: " +
        json);
  }
  std::map<std::string, double> amounts;
  for (const auto& [name, value] : parsed.items()) {
    if (!value.is_number()) {
      return absl::InvalidArgumentError("resource " + name + " must be a number, got " +
                                        value.dump());
    }
    amounts[name] = value.get<double>();
  }
  return FromMap(amounts);
}

std::map<std::string, double> ResourceSet::ToMap() const {
  std::map<std::string, double> out;
  for (const auto& [name, fixed] : amounts_) out[name] = static_cast<double>(fixed) / kUnit;
  return out;
}

double ResourceSet::Get(const std::string& name) const {
  return static_cast<double>(GetFixed(name)) / kUnit;
}

int64_t ResourceSet::GetFixed(const std::string& name) const {
  auto it = amounts_.find(name);
  return it == amounts_.end() ? 0 : it->second;
}

void ResourceSet::Set(const std::string& name, double amount) {
  int64_t fixed = static_cast<int64_t>(std::llround(amount * kUnit));
  if (fixed <= 0) {
    amounts_.erase(name);
  } else {
    amounts_[name] = fixed;
  }
}

bool ResourceSet::IsSubsetOf(const ResourceSet& other) const {
  for (const auto& [name, fixed] : amounts_) {
    if (fixed > other.GetFixed(name)) return false;
  }
  return true;
}

void ResourceSet::Add(const ResourceSet& other) {
  for (const auto& [name, fixed] : other.amounts_) amounts_[name] += fixed;
}

void ResourceSet::Subtract(const ResourceSet& other) {
  for (const auto& [name, fixed] : other.amounts_) {
    auto it = amounts_.find(name);
    if (it == amounts_.end()) continue;
    it->second -= fixed;
    if (it->second <= 0) amounts_.erase(it);
  }
}

std::string ResourceSet::Shortfall(const ResourceSet& other) const {
  std::string out;
  for (const auto& [name, fixed] : amounts_) {
    int64_t have = other.GetFixed(name);
    if (fixed <= have) continue;
    if (!out.empty()) out += ", ";
    out += name + ": " + FormatAmount(fixed) + " > " + FormatAmount(have);
  }
  return out;
}

std::string ResourceSet::ToString() const {
  std::string out = "{";
  for (const auto& [name, fixed] : amounts_) {
    if (out.size() > 1) out += ", ";
    out += name + ": " + FormatAmount(fixed);
  }
  return out + "}";
}

double NodeResources::UtilizationAfter(const ResourceSet& demand) const {
  double worst = 0;
  for (const auto& [name, want] : demand.fixed()) {
    int64_t total_amount = total.GetFixed(name);
    if (total_amount <= 0) return 1.0;
    int64_t used = total_amount - available.GetFixed(name) + want;
    worst = std::max(worst, static_cast<double>(used) / static_cast<double>(total_amount));
  }
  return std::min(worst, 1.0);
}

}  // namespace lumen
