// GcsJobTable: jobs (one per driver) with their code package manifest, and
// the internal key-value store. Runs on the GCS loop.
#pragma once

#include <functional>
#include <vector>

#include "common/clock.h"
#include "gcs/pubsub.h"
#include "gcs/store.h"
#include "lumen/id.h"
#include "proto/gcs.pb.h"
#include "rpc/gcs_service.h"

namespace lumen::gcs {

class GcsJobTable : public rpc::GcsJobHandler {
 public:
  GcsJobTable(StoreClient* store, Publisher* publisher, Clock* clock)
      : store_(store), publisher_(publisher), clock_(clock) {}

  LUMEN_HANDLER_IMPL(AddJob);
  LUMEN_HANDLER_IMPL(MarkJobFinished);
  LUMEN_HANDLER_IMPL(GetJob);
  LUMEN_HANDLER_IMPL(GetAllJobs);
  // Called (on the GCS loop) when a job finishes.
  void AddFinishListener(std::function<void(const JobId&)> listener) {
    finish_listeners_.push_back(std::move(listener));
  }

 private:
  absl::StatusOr<uint32_t> NextJobNumber();
  void Publish(const proto::JobInfo& job);

  StoreClient* store_;
  Publisher* publisher_;
  Clock* clock_;
  std::vector<std::function<void(const JobId&)>> finish_listeners_;
};

class GcsKv : public rpc::GcsKvHandler {
 public:
  explicit GcsKv(StoreClient* store) : store_(store) {}

  LUMEN_HANDLER_IMPL(KvPut);
  LUMEN_HANDLER_IMPL(KvGet);
  LUMEN_HANDLER_IMPL(KvDel);
  LUMEN_HANDLER_IMPL(KvKeys);
  LUMEN_HANDLER_IMPL(KvExists);

 private:
  StoreClient* store_;
};

}  // namespace lumen::gcs
