// CoreWorker's placement group methods: thin calls to the GCS, which
// places and reserves the bundles (gcs/placement_group_manager.h).
#include <algorithm>
#include <chrono>
#include <future>

#include "common/ids.h"
#include "rpc/rpc.h"
#include "scheduling/resources.h"
#include "worker/core_worker.h"

namespace lumen::worker {
namespace {

constexpr rpc::CallOptions kGcsCall{.timeout_ms = 10'000, .retry_for_ms = 10'000};
// A wait without end is made of waits this long.
constexpr int64_t kWaitChunkMs = 30'000;

proto::PlacementGroupInfo::Strategy ToProto(PlacementStrategy s) {
  switch (s) {
    case PlacementStrategy::kSpread:
      return proto::PlacementGroupInfo::SPREAD;
    case PlacementStrategy::kStrictPack:
      return proto::PlacementGroupInfo::STRICT_PACK;
    case PlacementStrategy::kStrictSpread:
      return proto::PlacementGroupInfo::STRICT_SPREAD;
    default:
      return proto::PlacementGroupInfo::PACK;
  }
}

PlacementStrategy FromProto(proto::PlacementGroupInfo::Strategy s) {
  switch (s) {
    case proto::PlacementGroupInfo::SPREAD:
      return PlacementStrategy::kSpread;
    case proto::PlacementGroupInfo::STRICT_PACK:
      return PlacementStrategy::kStrictPack;
    case proto::PlacementGroupInfo::STRICT_SPREAD:
      return PlacementStrategy::kStrictSpread;
    default:
      return PlacementStrategy::kPack;
  }
}

PlacementGroupState FromProto(proto::PlacementGroupInfo::State s) {
  switch (s) {
    case proto::PlacementGroupInfo::CREATED:
      return PlacementGroupState::kCreated;
    case proto::PlacementGroupInfo::REMOVED:
      return PlacementGroupState::kRemoved;
    case proto::PlacementGroupInfo::RESCHEDULING:
      return PlacementGroupState::kRescheduling;
    case proto::PlacementGroupInfo::INFEASIBLE:
      return PlacementGroupState::kInfeasible;
    default:
      return PlacementGroupState::kPending;
  }
}

absl::Status CheckBundles(const std::vector<Bundle>& bundles) {
  if (bundles.empty()) {
    return absl::InvalidArgumentError("a placement group needs at least one bundle");
  }
  for (size_t i = 0; i < bundles.size(); ++i) {
    auto r = ResourceSet::FromMap(bundles[i]);
    std::string which = "bundle " + std::to_string(i) + " of the placement group";
    if (!r.ok())
      return absl::InvalidArgumentError(which + ": " + std::string(r.status().message()));
    if (r->Empty()) {
      return absl::InvalidArgumentError(which +
                                        " reserves nothing: give it resources, "
                                        "such as {\"CPU\": 1}");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PlacementGroupId> CoreWorker::CreatePlacementGroup(
    const PlacementGroupOptions& options) {
  ApiCall call(this);
  if (call.stopped()) return absl::CancelledError("lumen is shutting down");
  LUMEN_RETURN_IF_ERROR(CheckBundles(options.bundles));
  PlacementGroupId id = NewPlacementGroupId(options_.job_id);
  proto::CreatePlacementGroupRequest req;
  proto::PlacementGroupInfo* g = req.mutable_group();
  g->set_group_id(id.Binary());
  g->set_job_id(options_.job_id.Binary());
  g->set_name(options.name);
  g->set_strategy(ToProto(options.strategy));
  g->set_detached(options.detached);
  for (const Bundle& b : options.bundles) {
    auto* out = g->add_bundles()->mutable_resources();
    for (const auto& [name, amount] : b) (*out)[name] = amount;
  }
  if (!options.name.empty()) {  // a taken name is reported here, at once
    auto created = rpc::CallSync<proto::CreatePlacementGroupReply>(
        [&](auto cb) { gcs_->CreatePlacementGroup(req, cb, kGcsCall); });
    if (!created.ok()) return created.status();
    return id;
  }
  // Nothing left that the GCS could refuse: send it and go on (Ray does the
  // same), so a program making many groups pays no round trip for each.
  auto answered = std::make_shared<std::promise<absl::Status>>();
  {
    std::lock_guard<std::mutex> lock(groups_mu_);
    creating_groups_[id] = answered->get_future().share();
  }
  gcs_->CreatePlacementGroup(
      req,
      [this, id, answered](absl::Status s, proto::CreatePlacementGroupReply reply) {
        if (s.ok()) {
          std::lock_guard<std::mutex> lock(groups_mu_);
          if (reply.created()) created_groups_.Insert(id);
          creating_groups_.erase(id);
        }
        answered->set_value(s);
      },
      kGcsCall);
  return id;
}

absl::Status CoreWorker::GroupCreation(const PlacementGroupId& group, int64_t timeout_ms) {
  std::shared_future<absl::Status> answer;
  {
    std::lock_guard<std::mutex> lock(groups_mu_);
    auto it = creating_groups_.find(group);
    if (it == creating_groups_.end()) return absl::OkStatus();
    answer = it->second;
  }
  if (timeout_ms >= 0 &&
      answer.wait_for(std::chrono::milliseconds(timeout_ms)) != std::future_status::ready) {
    return absl::DeadlineExceededError("the GCS has not yet answered the group's creation");
  }
  absl::Status s;
  try {
    s = answer.get();
  } catch (const std::future_error&) {  // the callback was dropped unrun
    return absl::CancelledError("the group's creation was abandoned (shutting down)");
  }
  if (s.ok()) return s;
  return absl::Status(
      s.code(), "creating placement group " + group.Hex() + " failed: " + std::string(s.message()));
}

absl::Status CoreWorker::RemovePlacementGroup(const PlacementGroupId& group) {
  ApiCall call(this);
  if (call.stopped()) return absl::CancelledError("lumen is shutting down");
  absl::Status creation = GroupCreation(group, -1);
  {
    std::lock_guard<std::mutex> lock(groups_mu_);
    created_groups_.Erase(group);
    // A failed creation is reported here; nothing was made to remove.
    if (!creation.ok()) creating_groups_.erase(group);
  }
  LUMEN_RETURN_IF_ERROR(creation);
  proto::RemovePlacementGroupRequest req;
  req.set_group_id(group.Binary());
  auto removed = rpc::CallSync<proto::RemovePlacementGroupReply>(
      [&](auto cb) { gcs_->RemovePlacementGroup(req, cb, kGcsCall); });
  if (!removed.ok()) return removed.status();
  // Known here before any later call (the loop keeps order), as for Kill.
  for (const auto& actor : removed->killed_actors()) {
    loop_.Post("core_worker.group_actor_killed",
               [this, actor] { actor_submitter_->OnActorChange(actor); });
  }
  return absl::OkStatus();
}

absl::Status CoreWorker::WaitPlacementGroup(const PlacementGroupId& group, int64_t timeout_ms) {
  ApiCall call(this);
  if (call.stopped()) return absl::CancelledError("lumen is shutting down");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  LUMEN_RETURN_IF_ERROR(GroupCreation(group, timeout_ms));
  {
    std::lock_guard<std::mutex> lock(groups_mu_);
    if (created_groups_.Contains(group)) return absl::OkStatus();
  }
  while (true) {
    int64_t left = kWaitChunkMs;
    if (timeout_ms >= 0) {
      left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                   std::chrono::steady_clock::now())
                 .count();
      left = std::clamp<int64_t>(left, 0, kWaitChunkMs);
    }
    proto::WaitPlacementGroupRequest req;
    req.set_group_id(group.Binary());
    req.set_timeout_ms(left);
    auto waited = rpc::CallSync<proto::WaitPlacementGroupReply>([&](auto cb) {
      gcs_->WaitPlacementGroup(req, cb, {.timeout_ms = left + 10'000, .retry_for_ms = 10'000});
    });
    bool more = absl::IsDeadlineExceeded(waited.status()) &&
                (timeout_ms < 0 || std::chrono::steady_clock::now() < deadline);
    if (!more) return waited.status();
    if (call.stopped()) return absl::CancelledError("lumen is shutting down");
  }
}

absl::StatusOr<PlacementGroupInfo> CoreWorker::GetPlacementGroup(const PlacementGroupId& group,
                                                                 const std::string& name) {
  ApiCall call(this);
  if (call.stopped()) return absl::CancelledError("lumen is shutting down");
  if (!group.IsNil()) LUMEN_RETURN_IF_ERROR(GroupCreation(group, -1));
  proto::GetPlacementGroupRequest req;
  req.set_group_id(group.Binary());
  req.set_name(name);
  auto found = rpc::CallSync<proto::GetPlacementGroupReply>(
      [&](auto cb) { gcs_->GetPlacementGroup(req, cb, kGcsCall); });
  if (!found.ok()) return found.status();
  const proto::PlacementGroupInfo& g = found->group();
  PlacementGroupInfo info;
  info.id = PlacementGroupId::FromBinary(g.group_id());
  info.name = g.name();
  info.strategy = FromProto(g.strategy());
  for (const auto& b : g.bundles())
    info.bundles.emplace_back(b.resources().begin(), b.resources().end());
  for (const auto& n : g.bundle_nodes()) info.bundle_nodes.push_back(NodeId::FromBinary(n));
  info.state = FromProto(g.state());
  info.error = g.error();
  info.detached = g.detached();
  return info;
}

}  // namespace lumen::worker
