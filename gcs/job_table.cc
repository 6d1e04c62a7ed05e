// Jobs and the internal KV; see job_table.h.
#include "gcs/job_table.h"

#include "common/logging.h"
#include "lumen/id.h"

namespace lumen::gcs {
namespace {

constexpr char kJobsTable[] = "jobs";
constexpr char kMetaTable[] = "meta";
constexpr char kJobRequestsTable[] = "job_requests";  // request id -> job id
constexpr char kJobCounterKey[] = "job_counter";

std::string KvTable(const std::string& ns) { return "kv:" + ns; }

}  // namespace

absl::StatusOr<uint32_t> GcsJobTable::NextJobNumber() {
  LUMEN_ASSIGN_OR_RETURN(auto current, store_->Get(kMetaTable, kJobCounterKey));
  uint32_t next = current ? static_cast<uint32_t>(std::stoul(*current)) + 1 : 1;
  LUMEN_RETURN_IF_ERROR(store_->Put(kMetaTable, kJobCounterKey, std::to_string(next)));
  return next;
}

void GcsJobTable::HandleAddJob(const proto::AddJobRequest& request, proto::AddJobReply* reply,
                               rpc::SendReply send) {
  // Sent again (the first answer was lost): the job the first one added.
  // Kept in the store, so a retry across a GCS restart finds it too.
  if (!request.request_id().empty()) {
    auto before = store_->Get(kJobRequestsTable, request.request_id());
    if (!before.ok()) {
      send(before.status());
      return;
    }
    if (before->has_value()) {
      reply->set_job_id(**before);
      send(absl::OkStatus());
      return;
    }
  }
  absl::StatusOr<uint32_t> number = NextJobNumber();
  if (!number.ok()) {
    send(number.status());
    return;
  }
  proto::JobInfo job = request.job();
  JobId id = JobId::FromInt(*number);
  job.set_job_id(id.Binary());
  job.set_start_time_ms(clock_->WallMs());
  job.set_finished(false);
  if (absl::Status s = store_->Put(kJobsTable, job.job_id(), job.SerializeAsString()); !s.ok()) {
    send(s);
    return;
  }
  if (!request.request_id().empty()) {
    if (absl::Status s = store_->Put(kJobRequestsTable, request.request_id(), job.job_id());
        !s.ok()) {
      send(s);
      return;
    }
  }
  Publish(job);
  LUMEN_LOG_INFO("job started job={} driver_pid={} code_files={}", id.Hex(), job.driver_pid(),
                 job.code_size());
  reply->set_job_id(job.job_id());
  send(absl::OkStatus());
}

void GcsJobTable::HandleMarkJobFinished(const proto::MarkJobFinishedRequest& request,
                                        proto::MarkJobFinishedReply* reply, rpc::SendReply send) {
  auto found = store_->Get(kJobsTable, request.job_id());
  if (!found.ok() || !found->has_value()) {
    send(absl::NotFoundError("no job " + JobId::FromBinary(request.job_id()).Hex()));
    return;
  }
  proto::JobInfo job;
  job.ParseFromString(**found);
  if (!job.finished()) {
    job.set_finished(true);
    job.set_end_time_ms(clock_->WallMs());
    (void)store_->Put(kJobsTable, job.job_id(), job.SerializeAsString());
    Publish(job);
    JobId id = JobId::FromBinary(job.job_id());
    LUMEN_LOG_INFO("job finished job={}", id.Hex());
    for (const auto& listener : finish_listeners_) listener(id);
  }
  send(absl::OkStatus());
}

void GcsJobTable::HandleGetJob(const proto::GetJobRequest& request, proto::GetJobReply* reply,
                               rpc::SendReply send) {
  auto found = store_->Get(kJobsTable, request.job_id());
  if (!found.ok()) {
    send(found.status());
  } else if (!found->has_value()) {
    send(absl::NotFoundError("no job " + JobId::FromBinary(request.job_id()).Hex()));
  } else {
    reply->mutable_job()->ParseFromString(**found);
    send(absl::OkStatus());
  }
}

void GcsJobTable::HandleGetAllJobs(const proto::GetAllJobsRequest& request,
                                   proto::GetAllJobsReply* reply, rpc::SendReply send) {
  auto all = store_->GetAll(kJobsTable);
  if (!all.ok()) {
    send(all.status());
    return;
  }
  for (const auto& [key, value] : *all) reply->add_jobs()->ParseFromString(value);
  send(absl::OkStatus());
}

void GcsJobTable::Publish(const proto::JobInfo& job) {
  proto::PubMessage m;
  m.set_channel(proto::JOB_CHANGES);
  m.set_key(job.job_id());
  *m.mutable_job() = job;
  publisher_->Publish(m);
}

void GcsKv::HandleKvPut(const proto::KvPutRequest& request, proto::KvPutReply* reply,
                        rpc::SendReply send) {
  auto existing = store_->Get(KvTable(request.ns()), request.key());
  if (!existing.ok()) {
    send(existing.status());
    return;
  }
  bool exists = existing->has_value();
  if (!exists || request.overwrite()) {
    if (absl::Status s = store_->Put(KvTable(request.ns()), request.key(), request.value());
        !s.ok()) {
      send(s);
      return;
    }
  }
  reply->set_added(!exists);
  send(absl::OkStatus());
}

void GcsKv::HandleKvGet(const proto::KvGetRequest& request, proto::KvGetReply* reply,
                        rpc::SendReply send) {
  auto found = store_->Get(KvTable(request.ns()), request.key());
  if (!found.ok()) {
    send(found.status());
    return;
  }
  reply->set_found(found->has_value());
  if (found->has_value()) reply->set_value(**found);
  send(absl::OkStatus());
}

void GcsKv::HandleKvDel(const proto::KvDelRequest& request, proto::KvDelReply* reply,
                        rpc::SendReply send) {
  auto deleted = store_->Delete(KvTable(request.ns()), request.key());
  if (!deleted.ok()) {
    send(deleted.status());
    return;
  }
  reply->set_deleted(*deleted);
  send(absl::OkStatus());
}

void GcsKv::HandleKvKeys(const proto::KvKeysRequest& request, proto::KvKeysReply* reply,
                         rpc::SendReply send) {
  auto all = store_->GetAll(KvTable(request.ns()));
  if (!all.ok()) {
    send(all.status());
    return;
  }
  for (const auto& [key, value] : *all) {
    if (key.compare(0, request.prefix().size(), request.prefix()) == 0) reply->add_keys(key);
  }
  send(absl::OkStatus());
}

void GcsKv::HandleKvExists(const proto::KvExistsRequest& request, proto::KvExistsReply* reply,
                           rpc::SendReply send) {
  auto found = store_->Get(KvTable(request.ns()), request.key());
  if (!found.ok()) {
    send(found.status());
    return;
  }
  reply->set_exists(found->has_value());
  send(absl::OkStatus());
}

}  // namespace lumen::gcs
