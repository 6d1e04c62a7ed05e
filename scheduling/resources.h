// ResourceSet: named quantities (CPU, GPU, memory, custom names) in fixed
// point (1/10000 of a unit), so that adding and subtracting fractions never
// drifts. Value type; not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "common/status.h"

namespace lumen {

class ResourceSet {
 public:
  static constexpr int64_t kUnit = 10000;

  ResourceSet() = default;
  // InvalidArgument for negative, non-finite or absurdly large amounts and
  // for bad names (empty, or not [A-Za-z0-9_.:-/]).
  static absl::StatusOr<ResourceSet> FromMap(const std::map<std::string, double>& amounts);
  // Parses a JSON object such as {"CPU": 4, "GPU": 1, "disk": 2}.
  static absl::StatusOr<ResourceSet> FromJson(const std::string& json);

  std::map<std::string, double> ToMap() const;
  double Get(const std::string& name) const;
  int64_t GetFixed(const std::string& name) const;
  void Set(const std::string& name, double amount);
  bool Empty() const { return amounts_.empty(); }

  // True when every amount here is at most `other`'s.
  bool IsSubsetOf(const ResourceSet& other) const;
  void Add(const ResourceSet& other);
  // Amounts never go below zero.
  void Subtract(const ResourceSet& other);
  // The names whose amount here exceeds `other`'s, e.g. "CPU: 8 > 4".
  std::string Shortfall(const ResourceSet& other) const;

  // {CPU: 2, GPU: 1}
  std::string ToString() const;
  const std::map<std::string, int64_t>& fixed() const { return amounts_; }

  friend bool operator==(const ResourceSet& a, const ResourceSet& b) {
    return a.amounts_ == b.amounts_;
  }

 private:
  std::map<std::string, int64_t> amounts_;  // zero amounts are not stored
};

// What one node has in all and has free now.
struct NodeResources {
  ResourceSet total;
  ResourceSet available;
  // Fraction in [0, 1] of the most used resource that `demand` asks for,
  // after placing `demand` here.
  double UtilizationAfter(const ResourceSet& demand) const;
};

}  // namespace lumen
