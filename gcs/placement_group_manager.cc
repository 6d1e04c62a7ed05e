// Placement groups in the GCS; see placement_group_manager.h.
#include "gcs/placement_group_manager.h"

#include <algorithm>

#include "common/logging.h"

namespace lumen::gcs {
namespace {

constexpr char kGroupsTable[] = "placement_groups";
constexpr int64_t kAdjustmentMemoryMs = 10'000;
constexpr int64_t kMaxWaitMs = 24LL * 3600 * 1000;

std::vector<ResourceSet> BundlesOf(const proto::PlacementGroupInfo& info) {
  std::vector<ResourceSet> out;
  for (const auto& b : info.bundles()) {
    std::map<std::string, double> amounts(b.resources().begin(), b.resources().end());
    out.push_back(ResourceSet::FromMap(amounts).value_or(ResourceSet()));
  }
  return out;
}

}  // namespace

BundleStrategy ToBundleStrategy(proto::PlacementGroupInfo::Strategy s) {
  switch (s) {
    case proto::PlacementGroupInfo::SPREAD:
      return BundleStrategy::kSpread;
    case proto::PlacementGroupInfo::STRICT_PACK:
      return BundleStrategy::kStrictPack;
    case proto::PlacementGroupInfo::STRICT_SPREAD:
      return BundleStrategy::kStrictSpread;
    default:
      return BundleStrategy::kPack;
  }
}

GcsPlacementGroupManager::GcsPlacementGroupManager(StoreClient* store, Publisher* publisher,
                                                   GcsNodeTable* nodes, Clock* clock,
                                                   EventLoop* loop, const std::string& token)
    : store_(store),
      publisher_(publisher),
      nodes_(nodes),
      clock_(clock),
      loop_(loop),
      node_clients_(token, loop) {}

const proto::PlacementGroupInfo* GcsPlacementGroupManager::Find(const PlacementGroupId& id) const {
  auto it = groups_.find(id);
  return it == groups_.end() ? nullptr : &it->second.info;
}

void GcsPlacementGroupManager::HandleCreatePlacementGroup(
    const proto::CreatePlacementGroupRequest& request, proto::CreatePlacementGroupReply* reply,
    rpc::SendReply send) {
  const proto::PlacementGroupInfo& info = request.group();
  PlacementGroupId id = PlacementGroupId::FromBinary(info.group_id());
  if (id.IsNil() || info.bundles_size() == 0) {
    send(absl::InvalidArgumentError("a placement group needs an id and at least one bundle"));
    return;
  }
  if (auto again = groups_.find(id); again != groups_.end()) {  // sent again
    again->second.creators.emplace_back(reply, std::move(send));
    AnswerCreators(again->second);
    return;
  }
  if (!info.name().empty() && names_.count(info.name())) {
    send(absl::AlreadyExistsError("a placement group named '" + info.name() +
                                  "' already exists: remove it or choose another name"));
    return;
  }
  Group& g = groups_[id];
  g.info = info;
  g.info.set_state(proto::PlacementGroupInfo::PENDING);
  g.info.clear_bundle_nodes();
  for (int i = 0; i < info.bundles_size(); ++i) g.info.add_bundle_nodes("");
  if (!info.name().empty()) names_[info.name()] = id;
  SetState(g, proto::PlacementGroupInfo::PENDING);
  g.creators.emplace_back(reply, std::move(send));
  TrySchedule(id);
  AnswerCreators(g);
}

void GcsPlacementGroupManager::AnswerCreators(Group& g) {
  if (g.reserving) return;
  for (auto& [reply, send] : g.creators) {
    reply->set_created(g.info.state() == proto::PlacementGroupInfo::CREATED);
    send(absl::OkStatus());
  }
  g.creators.clear();
}

ClusterView GcsPlacementGroupManager::ViewWithAdjustments() {
  int64_t now = clock_->NowMs();
  std::erase_if(adjustments_, [&](const Adjustment& a) {
    return a.until_ms < now || (a.version > 0 && nodes_->ResourcesVersion(a.node) >= a.version);
  });
  ClusterView view = nodes_->View();
  // Summed per node first: a burst of groups leaves many adjustments.
  std::map<NodeId, std::pair<ResourceSet, ResourceSet>> net;  // given back, taken
  for (const auto& a : adjustments_) {
    auto& [given, taken] = net[a.node];
    (a.credit ? given : taken).Add(a.resources);
  }
  for (const auto& [node, change] : net) {
    const NodeView* n = view.Find(node);
    if (n == nullptr) continue;
    ResourceSet left = n->resources.available;
    left.Add(change.first);
    left.Subtract(change.second);
    view.SetAvailable(node, left);
  }
  return view;
}

void GcsPlacementGroupManager::ForgetTaken(const PlacementGroupId& id, const NodeId& node) {
  std::erase_if(adjustments_,
                [&](const Adjustment& a) { return !a.credit && a.group == id && a.node == node; });
}

void GcsPlacementGroupManager::TrySchedule(const PlacementGroupId& id) {
  auto it = groups_.find(id);
  if (it == groups_.end() || shutting_down_) return;
  Group& g = it->second;
  auto state = g.info.state();
  if (g.reserving || (state != proto::PlacementGroupInfo::PENDING &&
                      state != proto::PlacementGroupInfo::RESCHEDULING)) {
    return;
  }
  std::vector<NodeId> placed(g.info.bundles_size());
  for (int i = 0; i < g.info.bundles_size(); ++i) {
    placed[i] = NodeId::FromBinary(g.info.bundle_nodes(i));
  }
  std::vector<ResourceSet> bundles = BundlesOf(g.info);
  BundleStrategy strategy = ToBundleStrategy(g.info.strategy());
  ClusterView view = ViewWithAdjustments();
  auto where = PlaceBundles(view, bundles, strategy, /*use_total=*/false, placed);
  if (!where.ok()) {
    auto ever = PlaceBundles(view, bundles, strategy, /*use_total=*/true, placed);
    if (!ever.ok())
      SetState(g, proto::PlacementGroupInfo::INFEASIBLE, std::string(ever.status().message()));
    return;  // else: wait for room (Tick tries again)
  }
  g.placing = *where;
  for (int i = 0; i < g.info.bundles_size(); ++i) {
    if (!placed[i].IsNil()) continue;
    adjustments_.push_back(
        {g.placing[i], id, bundles[i], false, 0, clock_->NowMs() + kAdjustmentMemoryMs});
  }
  g.reserving = true;
  Prepare(id, ++g.attempt);
}

void GcsPlacementGroupManager::Prepare(const PlacementGroupId& id, uint64_t attempt) {
  Group& g = groups_[id];
  // The bundles still to reserve, by node.
  std::map<NodeId, proto::PrepareBundlesRequest> requests;
  BundlesByNode round;
  for (int i = 0; i < g.info.bundles_size(); ++i) {
    if (!g.info.bundle_nodes(i).empty()) continue;  // reserved before
    proto::PrepareBundlesRequest& req = requests[g.placing[i]];
    req.set_group_id(id.Binary());
    proto::BundleOnNode* b = req.add_bundles();
    b->set_index(i);
    *b->mutable_resources() = g.info.bundles(i).resources();
    round[g.placing[i]].push_back(i);
  }
  struct Answers {
    size_t pending;
    bool all_prepared = true;
    BundlesByNode prepared;
  };
  auto answers = std::make_shared<Answers>(Answers{requests.size()});
  bool one_phase = requests.size() == 1;
  for (auto& [node, req] : requests) {
    req.set_commit(one_phase);
    std::string address = nodes_->NodeManagerAddress(node);
    auto answered = [this, id, attempt, node, answers, round, one_phase](bool prepared,
                                                                         uint64_t version) {
      if (prepared) {
        answers->prepared[node] = round.at(node);
        for (auto& a : adjustments_) {
          if (!a.credit && a.group == id && a.node == node && a.version == 0) a.version = version;
        }
      } else {
        answers->all_prepared = false;
      }
      if (--answers->pending > 0) return;
      auto it = groups_.find(id);
      bool current = it != groups_.end() && it->second.attempt == attempt;
      if (current && answers->all_prepared) {
        if (one_phase) {
          Committed(id, attempt, round, /*failed=*/false);
        } else {
          Commit(id, attempt, round);
        }
        return;
      }
      ReturnOn(id, answers->prepared, false);  // all or nothing
      for (const auto& [n, unused] : round) ForgetTaken(id, n);
      if (current) {
        it->second.reserving = false;  // Tick tries again
        AnswerCreators(it->second);
      }
    };
    if (address.empty()) {
      answered(false, 0);
      continue;
    }
    node_clients_.Get(address)->PrepareBundles(
        req,
        [answered](absl::Status s, proto::PrepareBundlesReply reply) {
          answered(s.ok() && reply.prepared(), reply.resources_version());
        },
        {.timeout_ms = 10'000});
  }
}

void GcsPlacementGroupManager::Commit(const PlacementGroupId& id, uint64_t attempt,
                                      BundlesByNode round) {
  auto pending = std::make_shared<size_t>(round.size());
  auto failed = std::make_shared<bool>(false);
  for (const auto& [node, indices] : round) {
    proto::CommitBundlesRequest req;
    req.set_group_id(id.Binary());
    std::string address = nodes_->NodeManagerAddress(node);
    auto committed = [this, id, attempt, pending, failed, round](bool ok) {
      if (!ok) *failed = true;
      if (--*pending > 0) return;
      Committed(id, attempt, round, *failed);
    };
    if (address.empty()) {
      committed(false);
      continue;
    }
    node_clients_.Get(address)->CommitBundles(
        req, [committed](absl::Status s, proto::CommitBundlesReply) { committed(s.ok()); },
        {.timeout_ms = 10'000});
  }
}

void GcsPlacementGroupManager::Committed(const PlacementGroupId& id, uint64_t attempt,
                                         const BundlesByNode& round, bool failed) {
  auto it = groups_.find(id);
  if (it == groups_.end() || it->second.attempt != attempt) return;  // removed
  Group& g = it->second;
  g.reserving = false;
  for (const auto& [n, unused] : round) {
    // A node that died since answering holds nothing any more.
    if (nodes_->NodeManagerAddress(n).empty()) failed = true;
  }
  if (failed) {  // start over (Tick)
    ReturnOn(id, round, false);
    for (const auto& [n, unused] : round) ForgetTaken(id, n);
    AnswerCreators(g);
    return;
  }
  for (const auto& [n, indices] : round) {
    for (int i : indices) g.info.set_bundle_nodes(i, n.Binary());
  }
  SetState(g, proto::PlacementGroupInfo::CREATED);
}

void GcsPlacementGroupManager::ReturnOn(const PlacementGroupId& id, const BundlesByNode& which,
                                        bool removed) {
  for (const auto& [node, indices] : which) {
    std::string address = nodes_->NodeManagerAddress(node);
    if (address.empty()) continue;
    proto::ReturnBundlesRequest req;
    req.set_group_id(id.Binary());
    req.set_removed(removed);
    if (!removed) *req.mutable_indices() = {indices.begin(), indices.end()};
    node_clients_.Get(address)->ReturnBundles(
        req,
        [this, id, node](absl::Status s, proto::ReturnBundlesReply reply) {
          for (auto& a : adjustments_) {  // the credit the removal counted
            if (a.credit && a.group == id && a.node == node && a.version == 0) {
              a.version = s.ok() ? reply.resources_version() : 1;
            }
          }
        },
        {.timeout_ms = 10'000, .retry_for_ms = 10'000});
  }
}

absl::Status GcsPlacementGroupManager::WaitResult(const Group& g) const {
  switch (g.info.state()) {
    case proto::PlacementGroupInfo::CREATED:
      return absl::OkStatus();
    case proto::PlacementGroupInfo::INFEASIBLE:
      return absl::FailedPreconditionError("placement group can never be created: " +
                                           g.info.error());
    case proto::PlacementGroupInfo::REMOVED:
      return absl::NotFoundError("placement group was removed");
    default:
      return absl::UnavailableError("not created yet");
  }
}

void GcsPlacementGroupManager::SetState(Group& g, proto::PlacementGroupInfo::State state,
                                        const std::string& error) {
  g.info.set_state(state);
  g.info.set_error(error);
  if (state != proto::PlacementGroupInfo::REMOVED) {  // a removed one is deleted
    (void)store_->Put(kGroupsTable, g.info.group_id(), g.info.SerializeAsString());
  } else {
    proto::PubMessage m;
    m.set_channel(proto::PLACEMENT_GROUP_CHANGES);
    m.set_key(g.info.group_id());
    *m.mutable_group() = g.info;
    publisher_->Publish(m);
  }
  AnswerCreators(g);
  if (state == proto::PlacementGroupInfo::PENDING ||
      state == proto::PlacementGroupInfo::RESCHEDULING) {
    return;
  }
  std::vector<Waiter> waiters = std::move(g.waiters);
  g.waiters.clear();
  for (auto& w : waiters) w.send(WaitResult(g));
}

void GcsPlacementGroupManager::HandleRemovePlacementGroup(
    const proto::RemovePlacementGroupRequest& request, proto::RemovePlacementGroupReply* reply,
    rpc::SendReply send) {
  PlacementGroupId id = PlacementGroupId::FromBinary(request.group_id());
  auto it = groups_.find(id);
  if (it == groups_.end()) {
    send(absl::NotFoundError("no placement group " + id.Hex() + " (removed, or never created)"));
    return;
  }
  Group& g = it->second;
  BundlesByNode holders;
  std::map<NodeId, ResourceSet> credits;  // bundles the nodes' reports show
  std::vector<ResourceSet> bundles = BundlesOf(g.info);
  for (int i = 0; i < g.info.bundles_size(); ++i) {
    if (g.info.bundle_nodes(i).empty()) continue;
    NodeId node = NodeId::FromBinary(g.info.bundle_nodes(i));
    holders[node];
    credits[node].Add(bundles[i]);
  }
  for (const NodeId& node : g.placing) holders[node];  // a reservation in flight
  for (const auto& [node, unused] : holders) {
    bool shown = std::none_of(adjustments_.begin(), adjustments_.end(), [&](const Adjustment& a) {
      return !a.credit && a.group == id && a.node == node;
    });
    ForgetTaken(id, node);
    if (shown && credits.count(node)) {
      adjustments_.push_back(
          {node, id, credits[node], true, 0, clock_->NowMs() + kAdjustmentMemoryMs});
    }
  }
  names_.erase(g.info.name());
  SetState(g, proto::PlacementGroupInfo::REMOVED);
  (void)store_->Delete(kGroupsTable, id.Binary());
  groups_.erase(it);
  // Its actors are dead before the answer, which lists them: the caller
  // knows at once that later calls to them fail.
  for (const auto& listener : removal_listeners_) {
    for (auto& actor : listener(id)) *reply->add_killed_actors() = std::move(actor);
  }
  send(absl::OkStatus());
  ReturnOn(id, holders, /*removed=*/true);
}

void GcsPlacementGroupManager::HandleListPlacementGroups(
    const proto::ListPlacementGroupsRequest& request, proto::ListPlacementGroupsReply* reply,
    rpc::SendReply send) {
  for (const auto& [id, g] : groups_) *reply->add_groups() = g.info;
  send(absl::OkStatus());
}

void GcsPlacementGroupManager::HandleGetPlacementGroup(
    const proto::GetPlacementGroupRequest& request, proto::GetPlacementGroupReply* reply,
    rpc::SendReply send) {
  PlacementGroupId id = PlacementGroupId::FromBinary(request.group_id());
  if (id.IsNil() && !request.name().empty()) {
    auto named = names_.find(request.name());
    if (named != names_.end()) id = named->second;
  }
  const proto::PlacementGroupInfo* info = Find(id);
  if (info == nullptr) {
    send(absl::NotFoundError("no placement group " + (request.name().empty()
                                                          ? id.Hex()
                                                          : "named '" + request.name() + "'")));
    return;
  }
  *reply->mutable_group() = *info;
  send(absl::OkStatus());
}

void GcsPlacementGroupManager::HandleWaitPlacementGroup(
    const proto::WaitPlacementGroupRequest& request, proto::WaitPlacementGroupReply* reply,
    rpc::SendReply send) {
  auto it = groups_.find(PlacementGroupId::FromBinary(request.group_id()));
  if (it == groups_.end()) {
    send(absl::NotFoundError("no placement group " +
                             PlacementGroupId::FromBinary(request.group_id()).Hex() +
                             " (removed, or never created)"));
    return;
  }
  absl::Status now = WaitResult(it->second);
  if (!absl::IsUnavailable(now)) {
    send(now);
    return;
  }
  int64_t timeout =
      request.timeout_ms() < 0 ? kMaxWaitMs : std::min(request.timeout_ms(), kMaxWaitMs);
  it->second.waiters.push_back(Waiter{std::move(send), clock_->NowMs() + timeout});
}

void GcsPlacementGroupManager::Tick() {
  int64_t now = clock_->NowMs();
  for (auto& [id, g] : groups_) {
    auto state = g.info.state();
    if (state == proto::PlacementGroupInfo::PENDING ||
        state == proto::PlacementGroupInfo::RESCHEDULING) {
      TrySchedule(id);
    }
    std::vector<Waiter> keep;
    for (auto& w : g.waiters) {
      if (w.deadline_ms <= now) {
        w.send(absl::DeadlineExceededError("placement group is not created yet"));
      } else {
        keep.push_back(std::move(w));
      }
    }
    g.waiters.swap(keep);
  }
}

absl::Status GcsPlacementGroupManager::Restore() {
  LUMEN_ASSIGN_OR_RETURN(auto all, store_->GetAll(kGroupsTable));
  for (const auto& [key, value] : all) {
    PlacementGroupId id = PlacementGroupId::FromBinary(key);
    Group& g = groups_[id];
    if (!g.info.ParseFromString(value)) return absl::DataLossError("a stored group does not parse");
    if (!g.info.name().empty()) names_[g.info.name()] = id;
    // Pending ones are placed again by Tick (reservations are idempotent).
  }
  if (!all.empty()) LUMEN_LOG_INFO("restored {} placement groups", groups_.size());
  return absl::OkStatus();
}

void GcsPlacementGroupManager::OnNodeDead(const NodeId& node) {
  std::string key = node.Binary();
  for (auto& [id, g] : groups_) {
    if (g.info.state() != proto::PlacementGroupInfo::CREATED &&
        g.info.state() != proto::PlacementGroupInfo::RESCHEDULING) {
      continue;
    }
    bool lost = false;
    for (int i = 0; i < g.info.bundles_size(); ++i) {
      if (g.info.bundle_nodes(i) == key) {
        g.info.set_bundle_nodes(i, "");
        lost = true;
      }
    }
    if (!lost) continue;
    LUMEN_LOG_INFO("placement group {} lost bundles on node {}: placing them again", id.Short(),
                   node.Short());
    SetState(g, proto::PlacementGroupInfo::RESCHEDULING);
    TrySchedule(id);
  }
}

void GcsPlacementGroupManager::OnJobFinished(const JobId& job) {
  std::vector<PlacementGroupId> doomed;
  for (const auto& [id, g] : groups_) {
    if (!g.info.detached() && JobId::FromBinary(g.info.job_id()) == job) {
      doomed.push_back(id);
    }
  }
  for (const auto& id : doomed) {
    proto::RemovePlacementGroupRequest req;
    req.set_group_id(id.Binary());
    proto::RemovePlacementGroupReply reply;
    HandleRemovePlacementGroup(req, &reply, [](absl::Status) {});
  }
}

void GcsPlacementGroupManager::Shutdown() {
  shutting_down_ = true;
  for (auto& [id, g] : groups_) {
    for (auto& w : g.waiters) w.send(absl::UnavailableError("the GCS is stopping"));
    g.waiters.clear();
    for (auto& [reply, send] : g.creators) send(absl::UnavailableError("the GCS is stopping"));
    g.creators.clear();
  }
  node_clients_.Clear();
}

}  // namespace lumen::gcs
