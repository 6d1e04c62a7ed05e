// Placement groups as resources. Once a group's bundle i is reserved on a
// node, that node offers new resources for it: for each resource R of the
// bundle, R_group_<i>_<group> (this bundle) and R_group_<group> (any bundle
// of the group), plus bundle_group_... markers. A task or actor placed in
// the group asks for those names instead of R, so ordinary resource
// scheduling finds the node (Ray's scheme). Also: where to put bundles.
// Pure functions.
#pragma once

#include <string>
#include <vector>

#include "lumen/id.h"
#include "scheduling/cluster_view.h"

namespace lumen {

enum class BundleStrategy { kPack, kSpread, kStrictPack, kStrictSpread };

// bundle < 0: any bundle of the group.
std::string GroupResourceName(const std::string& resource, const PlacementGroupId& group,
                              int bundle);
// What a task in the group's bundle asks for instead of `demand`: with a
// bundle index, both that bundle's and the group's names.
ResourceSet GroupDemand(const ResourceSet& demand, const PlacementGroupId& group, int bundle);
// What a node adds once it holds bundle `index` of `group`.
ResourceSet BundleResources(const ResourceSet& bundle, const PlacementGroupId& group, int index);
bool IsGroupResource(const std::string& name);
// True when `demand` asks for any resource of `group` (any group: nil).
bool UsesGroup(const ResourceSet& demand, const PlacementGroupId& group = PlacementGroupId());
// True when `demand` asks for bundle `index` of `group` by its index.
bool UsesBundle(const ResourceSet& demand, const PlacementGroupId& group, int index);

// A node for each bundle, by strategy, from the nodes' available resources
// (or their totals with `use_total`, to tell "not now" from "never").
// `placed` may fix some bundles already (nil: to place). An error says which
// bundle does not fit and why.
absl::StatusOr<std::vector<NodeId>> PlaceBundles(const ClusterView& view,
                                                 const std::vector<ResourceSet>& bundles,
                                                 BundleStrategy strategy, bool use_total,
                                                 std::vector<NodeId> placed = {});

}  // namespace lumen
