// GcsClient: typed calls to the GCS for node managers, drivers, workers and
// the CLI. Thread-safe. Callbacks run on the loop given at construction (or on a gRPC
// thread when it is null).
#pragma once

#include <memory>
#include <string>

#include "common/event_loop.h"
#include "proto/gcs.pb.h"
#include "rpc/rpc.h"

namespace lumen::proto {
class GcsNodeService;
class GcsJobService;
class GcsKvService;
class GcsPubSubService;
class GcsActorService;
class GcsPlacementGroupService;
class GcsTaskService;
}  // namespace lumen::proto

namespace lumen::rpc {

// KV namespace of job code files, keyed by SHA-256 (see worker/code_package.h).
inline constexpr char kCodeKvNamespace[] = "code";

template <typename Service>
class GrpcClient;

class GcsClient {
 public:
  GcsClient(const std::string& address, const std::string& token, EventLoop* loop);
  ~GcsClient();

  const std::string& address() const { return address_; }

  LUMEN_CLIENT_DECL(RegisterNode);
  LUMEN_CLIENT_DECL(UnregisterNode);
  LUMEN_CLIENT_DECL(ReportNode);
  LUMEN_CLIENT_DECL(GetAllNodes);
  LUMEN_CLIENT_DECL(DrainNode);
  LUMEN_CLIENT_DECL(AddJob);
  LUMEN_CLIENT_DECL(MarkJobFinished);
  LUMEN_CLIENT_DECL(GetJob);
  LUMEN_CLIENT_DECL(GetAllJobs);
  LUMEN_CLIENT_DECL(KvPut);
  LUMEN_CLIENT_DECL(KvGet);
  LUMEN_CLIENT_DECL(KvDel);
  LUMEN_CLIENT_DECL(KvKeys);
  LUMEN_CLIENT_DECL(KvExists);
  LUMEN_CLIENT_DECL(Subscribe);
  LUMEN_CLIENT_DECL(Poll);
  LUMEN_CLIENT_DECL(Unsubscribe);
  LUMEN_CLIENT_DECL(SubscribeKey);
  LUMEN_CLIENT_DECL(CreateActor);
  LUMEN_CLIENT_DECL(GetActorInfo);
  LUMEN_CLIENT_DECL(KillActor);
  LUMEN_CLIENT_DECL(ListActors);
  LUMEN_CLIENT_DECL(ReportActorWorkerExit);
  LUMEN_CLIENT_DECL(CreatePlacementGroup);
  LUMEN_CLIENT_DECL(RemovePlacementGroup);
  LUMEN_CLIENT_DECL(GetPlacementGroup);
  LUMEN_CLIENT_DECL(WaitPlacementGroup);
  LUMEN_CLIENT_DECL(ListPlacementGroups);
  LUMEN_CLIENT_DECL(AddTaskEvents);
  LUMEN_CLIENT_DECL(ListTasks);

 private:
  std::string address_;
  std::unique_ptr<GrpcClient<proto::GcsNodeService>> node_;
  std::unique_ptr<GrpcClient<proto::GcsJobService>> job_;
  std::unique_ptr<GrpcClient<proto::GcsKvService>> kv_;
  std::unique_ptr<GrpcClient<proto::GcsPubSubService>> pubsub_;
  std::unique_ptr<GrpcClient<proto::GcsActorService>> actor_;
  std::unique_ptr<GrpcClient<proto::GcsPlacementGroupService>> group_;
  std::unique_ptr<GrpcClient<proto::GcsTaskService>> task_;
};

}  // namespace lumen::rpc
