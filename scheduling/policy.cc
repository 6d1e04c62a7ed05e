// Built-in placement policies; see policy.h.
#include "scheduling/policy.h"

#include <algorithm>

namespace lumen {

void ClusterView::Upsert(NodeView node) {
  NodeId id = node.id;
  nodes_[id] = std::move(node);
}

void ClusterView::SetAvailable(const NodeId& id, const ResourceSet& available) {
  auto it = nodes_.find(id);
  if (it != nodes_.end()) it->second.resources.available = available;
}

void ClusterView::MarkDead(const NodeId& id) {
  auto it = nodes_.find(id);
  if (it != nodes_.end()) it->second.alive = false;
}

const NodeView* ClusterView::Find(const NodeId& id) const {
  auto it = nodes_.find(id);
  return it == nodes_.end() ? nullptr : &it->second;
}

size_t ClusterView::NumAlive() const {
  return std::count_if(nodes_.begin(), nodes_.end(), [](const auto& e) { return e.second.alive; });
}

std::string InfeasibleMessage(const ClusterView& view, const ResourceSet& demand) {
  const NodeView* closest = nullptr;
  size_t closest_missing = SIZE_MAX;
  for (const auto& [id, node] : view.nodes()) {
    if (!node.alive) continue;
    size_t missing = 0;
    for (const auto& [name, amount] : demand.fixed()) {
      if (amount > node.resources.total.GetFixed(name)) missing++;
    }
    if (missing < closest_missing) {
      closest = &node;
      closest_missing = missing;
    }
  }
  std::string msg = "no node can ever run this: it needs " + demand.ToString();
  if (closest == nullptr) return msg + " and no node is alive";
  return msg + "; the closest node " + closest->id.Short() + " has " +
         closest->resources.total.ToString() +
         " (short: " + demand.Shortfall(closest->resources.total) +
         "). Ask for less, or add a node with --resources";
}

namespace {

bool Fits(const NodeView& n, const ResourceSet& demand, bool now) {
  return n.alive && !n.draining &&
         demand.IsSubsetOf(now ? n.resources.available : n.resources.total);
}

// The least used node among those that fit (now or ever); a random one of the
// best few, so that many callers do not all pick the same node.
const NodeView* LeastUsed(const ClusterView& view, const ResourceSet& demand, bool now,
                          std::mt19937_64* rng) {
  std::vector<std::pair<double, const NodeView*>> fit;
  for (const auto& [id, node] : view.nodes()) {
    if (Fits(node, demand, now)) fit.emplace_back(node.resources.UtilizationAfter(demand), &node);
  }
  if (fit.empty()) return nullptr;
  std::stable_sort(fit.begin(), fit.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  size_t k = std::max<size_t>(1, fit.size() / 5);
  while (k < fit.size() && fit[k].first == fit[0].first) k++;
  return fit[std::uniform_int_distribution<size_t>(0, k - 1)(*rng)].second;
}

Placement At(const NodeId& node) { return Placement{true, node, ""}; }
Placement Infeasible(std::string error) {
  return Placement{false, NodeId::Nil(), std::move(error)};
}

class HybridPolicy : public PlacementPolicy {
 public:
  Placement Place(const ClusterView& view, const NodeId& local,
                  const PlacementRequest& request) override {
    const NodeView* self = view.Find(local);
    if (self && Fits(*self, request.demand, /*now=*/true)) return At(local);
    if (const NodeView* n = LeastUsed(view, request.demand, /*now=*/true, &rng_)) return At(n->id);
    if (self && Fits(*self, request.demand, /*now=*/false)) return At(local);
    if (const NodeView* n = LeastUsed(view, request.demand, /*now=*/false, &rng_)) return At(n->id);
    return Infeasible(InfeasibleMessage(view, request.demand));
  }

 private:
  std::mt19937_64 rng_{std::random_device{}()};
};

class SpreadPolicy : public PlacementPolicy {
 public:
  Placement Place(const ClusterView& view, const NodeId& local,
                  const PlacementRequest& request) override {
    for (bool now : {true, false}) {
      std::vector<NodeId> fit;
      for (const auto& [id, node] : view.nodes()) {
        if (Fits(node, request.demand, now)) fit.push_back(id);
      }
      if (!fit.empty()) return At(fit[cursor_++ % fit.size()]);
    }
    return Infeasible(InfeasibleMessage(view, request.demand));
  }

 private:
  size_t cursor_ = 0;
};

class NodeAffinityPolicy : public PlacementPolicy {
 public:
  Placement Place(const ClusterView& view, const NodeId& local,
                  const PlacementRequest& request) override {
    const NodeView* target = view.Find(request.target);
    bool usable = target && Fits(*target, request.demand, /*now=*/false);
    if (usable && (!request.soft || Fits(*target, request.demand, /*now=*/true))) {
      return At(request.target);
    }
    if (request.soft) return hybrid_.Place(view, local, request);
    if (!target) return Infeasible("node " + request.target.Hex() + " is not in the cluster");
    if (!target->alive) return Infeasible("node " + request.target.Short() + " is dead");
    return Infeasible("node " + request.target.Short() + " can never run this: it needs " +
                      request.demand.ToString() + " but has " + target->resources.total.ToString());
  }

 private:
  HybridPolicy hybrid_;
};

}  // namespace

PlacementPolicyRegistry& PlacementPolicyRegistry::Default() {
  static PlacementPolicyRegistry* registry = [] {
    auto* r = new PlacementPolicyRegistry();
    r->Register("hybrid", [] { return std::make_unique<HybridPolicy>(); });
    r->Register("spread", [] { return std::make_unique<SpreadPolicy>(); });
    r->Register("node_affinity", [] { return std::make_unique<NodeAffinityPolicy>(); });
    return r;
  }();
  return *registry;
}

void PlacementPolicyRegistry::Register(const std::string& name, PlacementPolicyFactory factory) {
  factories_[name] = std::move(factory);
}

std::unique_ptr<PlacementPolicy> PlacementPolicyRegistry::Create(const std::string& name) const {
  auto it = factories_.find(name);
  return it == factories_.end() ? nullptr : it->second();
}

std::vector<std::string> PlacementPolicyRegistry::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, f] : factories_) names.push_back(name);
  return names;
}

Scheduler::Scheduler(const PlacementPolicyRegistry& registry) {
  for (const auto& name : registry.Names()) policies_[name] = registry.Create(name);
}

Placement Scheduler::Place(const ClusterView& view, const NodeId& local,
                           const PlacementRequest& request) {
  auto it = policies_.find(request.policy);
  if (it == policies_.end()) {
    return Infeasible("unknown scheduling strategy '" + request.policy + "'");
  }
  return it->second->Place(view, local, request);
}

}  // namespace lumen
