// Placement groups as resources, and bundle placement; see placement_group.h.
#include "scheduling/placement_group.h"

#include <algorithm>
#include <map>
#include <set>

namespace lumen {
namespace {

constexpr char kMarker[] = "bundle";
constexpr double kMarkerAmount = 1000;
constexpr double kMarkerDemand = 0.001;

const char* StrategyName(BundleStrategy s) {
  switch (s) {
    case BundleStrategy::kPack:
      return "PACK";
    case BundleStrategy::kSpread:
      return "SPREAD";
    case BundleStrategy::kStrictPack:
      return "STRICT_PACK";
    case BundleStrategy::kStrictSpread:
      return "STRICT_SPREAD";
  }
  return "?";
}

}  // namespace

std::string GroupResourceName(const std::string& resource, const PlacementGroupId& group,
                              int bundle) {
  if (bundle < 0) return resource + "_group_" + group.Hex();
  return resource + "_group_" + std::to_string(bundle) + "_" + group.Hex();
}

ResourceSet GroupDemand(const ResourceSet& demand, const PlacementGroupId& group, int bundle) {
  ResourceSet out;
  auto take = [&](const std::string& name, double amount) {
    out.Set(GroupResourceName(name, group, bundle), amount);
    // A bundle's share of the group's total goes too, or a task for "any
    // bundle" would find it free.
    if (bundle >= 0) out.Set(GroupResourceName(name, group, -1), amount);
  };
  if (demand.Empty()) {
    take(kMarker, kMarkerDemand);
    return out;
  }
  for (const auto& [name, amount] : demand.ToMap()) take(name, amount);
  return out;
}

ResourceSet BundleResources(const ResourceSet& bundle, const PlacementGroupId& group, int index) {
  ResourceSet out;
  for (const auto& [name, amount] : bundle.ToMap()) {
    out.Set(GroupResourceName(name, group, index), amount);
    out.Set(GroupResourceName(name, group, -1), amount);
  }
  out.Set(GroupResourceName(kMarker, group, index), kMarkerAmount);
  out.Set(GroupResourceName(kMarker, group, -1), kMarkerAmount);
  return out;
}

bool IsGroupResource(const std::string& name) { return name.find("_group_") != std::string::npos; }

bool UsesGroup(const ResourceSet& demand, const PlacementGroupId& group) {
  for (const auto& [name, amount] : demand.fixed()) {
    if (!IsGroupResource(name)) continue;
    if (group.IsNil() || name.find(group.Hex()) != std::string::npos) return true;
  }
  return false;
}

bool UsesBundle(const ResourceSet& demand, const PlacementGroupId& group, int index) {
  std::string suffix = "_group_" + std::to_string(index) + "_" + group.Hex();
  for (const auto& [name, amount] : demand.fixed()) {
    if (name.ends_with(suffix)) return true;
  }
  return false;
}

absl::StatusOr<std::vector<NodeId>> PlaceBundles(const ClusterView& view,
                                                 const std::vector<ResourceSet>& bundles,
                                                 BundleStrategy strategy, bool use_total,
                                                 std::vector<NodeId> placed) {
  placed.resize(bundles.size());
  std::map<NodeId, NodeResources> room;  // what is left on each live node
  for (const auto& [id, node] : view.nodes()) {
    if (!node.alive) continue;
    NodeResources r = node.resources;
    if (use_total) r.available = r.total;
    room[id] = r;
  }
  std::set<NodeId> used;
  for (size_t i = 0; i < bundles.size(); ++i) {
    if (placed[i].IsNil()) continue;
    used.insert(placed[i]);
  }
  auto take = [&](size_t i, const NodeId& n) {
    room[n].available.Subtract(bundles[i]);
    placed[i] = n;
    used.insert(n);
  };
  // The least used node that fits `need`, among those `allowed` accepts.
  auto best = [&](const ResourceSet& need, const auto& allowed) -> NodeId {
    NodeId pick;
    double pick_use = 2;
    for (const auto& [id, r] : room) {
      if (!allowed(id) || !need.IsSubsetOf(r.available)) continue;
      double use = r.UtilizationAfter(need);
      if (use < pick_use) {
        pick = id;
        pick_use = use;
      }
    }
    return pick;
  };
  auto unplaceable = [&](size_t i, const std::string& why) {
    return absl::FailedPreconditionError(std::string("bundle ") + std::to_string(i) + " " +
                                         bundles[i].ToString() + " of a " + StrategyName(strategy) +
                                         " group does not fit " +
                                         (use_total ? "on any node" : "now") + ": " + why);
  };

  if (strategy == BundleStrategy::kStrictPack || strategy == BundleStrategy::kPack) {
    ResourceSet sum;
    for (size_t i = 0; i < bundles.size(); ++i) {
      if (placed[i].IsNil()) sum.Add(bundles[i]);
    }
    auto anywhere_or_used = [&](const NodeId& n) { return used.empty() || used.count(n) > 0; };
    NodeId one = best(sum, anywhere_or_used);
    if (!one.IsNil()) {
      for (size_t i = 0; i < bundles.size(); ++i) {
        if (placed[i].IsNil()) take(i, one);
      }
      return placed;
    }
    if (strategy == BundleStrategy::kStrictPack) {
      return absl::FailedPreconditionError(std::string("no node ") +
                                           (use_total ? "has" : "has free") + " " + sum.ToString() +
                                           " for a STRICT_PACK group");
    }
  }
  for (size_t i = 0; i < bundles.size(); ++i) {
    if (!placed[i].IsNil()) continue;
    NodeId n;
    switch (strategy) {
      case BundleStrategy::kPack:  // nodes already used first
        n = best(bundles[i], [&](const NodeId& id) { return used.count(id) > 0; });
        if (n.IsNil()) n = best(bundles[i], [](const NodeId&) { return true; });
        break;
      case BundleStrategy::kSpread:  // new nodes first
        n = best(bundles[i], [&](const NodeId& id) { return used.count(id) == 0; });
        if (n.IsNil()) n = best(bundles[i], [](const NodeId&) { return true; });
        break;
      case BundleStrategy::kStrictSpread:
        n = best(bundles[i], [&](const NodeId& id) { return used.count(id) == 0; });
        if (n.IsNil()) return unplaceable(i, "every node that could hold it has a bundle already");
        break;
      case BundleStrategy::kStrictPack:
        break;
    }
    if (n.IsNil()) return unplaceable(i, "no node has room for it");
    take(i, n);
  }
  return placed;
}

}  // namespace lumen
