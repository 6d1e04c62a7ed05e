// Owner-side reference counting; see reference_counter.h.
#include "worker/reference_counter.h"

#include <algorithm>

namespace lumen::worker {

void ReferenceCounter::AddOwned(const ObjectId& id) {
  std::lock_guard<std::mutex> lock(mu_);
  refs_[id].local++;
}

void ReferenceCounter::AddLocalRef(const ObjectId& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = refs_.find(id);
  if (it != refs_.end()) it->second.local++;
}

void ReferenceCounter::RemoveLocalRef(const ObjectId& id) { Release(id, false); }

void ReferenceCounter::AddSubmittedRefs(const std::vector<ObjectId>& ids) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& id : ids) {
    auto it = refs_.find(id);
    if (it != refs_.end()) it->second.submitted++;
  }
}

void ReferenceCounter::RemoveSubmittedRefs(const std::vector<ObjectId>& ids) {
  for (const auto& id : ids) Release(id, true);
}

void ReferenceCounter::Release(const ObjectId& id, bool submitted) {
  std::vector<ObjectLocation> locations;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = refs_.find(id);
    if (it == refs_.end()) return;
    int64_t& count = submitted ? it->second.submitted : it->second.local;
    if (count > 0) count--;
    if (it->second.local > 0 || it->second.submitted > 0) return;
    locations = std::move(it->second.locations);
    refs_.erase(it);
  }
  on_free_(id, locations);
}

bool ReferenceCounter::AddLocation(const ObjectId& id, const ObjectLocation& location) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = refs_.find(id);
  if (it == refs_.end()) return false;
  auto& locs = it->second.locations;
  if (std::find(locs.begin(), locs.end(), location) == locs.end()) locs.push_back(location);
  return true;
}

std::vector<std::pair<ObjectId, std::optional<ObjectLocation>>> ReferenceCounter::RemoveNode(
    const NodeId& node) {
  std::vector<std::pair<ObjectId, std::optional<ObjectLocation>>> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, e] : refs_) {
    size_t before = e.locations.size();
    std::erase_if(e.locations, [&](const ObjectLocation& l) { return l.node == node; });
    if (e.locations.size() == before) continue;
    std::optional<ObjectLocation> left;
    if (!e.locations.empty()) left = e.locations.front();
    out.emplace_back(id, std::move(left));
  }
  return out;
}

std::optional<ObjectLocation> ReferenceCounter::RemoveLocation(const ObjectId& id,
                                                               const NodeId& node) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = refs_.find(id);
  if (it == refs_.end()) return std::nullopt;
  auto& locs = it->second.locations;
  std::erase_if(locs, [&](const ObjectLocation& l) { return l.node == node; });
  if (locs.empty()) return std::nullopt;
  return locs.front();
}

bool ReferenceCounter::Has(const ObjectId& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return refs_.count(id) > 0;
}

size_t ReferenceCounter::NumObjects() const {
  std::lock_guard<std::mutex> lock(mu_);
  return refs_.size();
}

}  // namespace lumen::worker
