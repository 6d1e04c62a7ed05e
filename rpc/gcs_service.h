// The GCS services as handler interfaces. The GCS tables implement them;
// MakeGcs*Service wraps one for a GrpcServer.
#pragma once

#include <memory>

#include "proto/gcs.pb.h"
#include "rpc/server.h"

namespace lumen::rpc {

class GcsNodeHandler {
 public:
  virtual ~GcsNodeHandler() = default;
  LUMEN_HANDLER_DECL(RegisterNode);
  LUMEN_HANDLER_DECL(UnregisterNode);
  LUMEN_HANDLER_DECL(ReportNode);
  LUMEN_HANDLER_DECL(GetAllNodes);
  LUMEN_HANDLER_DECL(DrainNode);
};

class GcsJobHandler {
 public:
  virtual ~GcsJobHandler() = default;
  LUMEN_HANDLER_DECL(AddJob);
  LUMEN_HANDLER_DECL(MarkJobFinished);
  LUMEN_HANDLER_DECL(GetJob);
  LUMEN_HANDLER_DECL(GetAllJobs);
};

class GcsKvHandler {
 public:
  virtual ~GcsKvHandler() = default;
  LUMEN_HANDLER_DECL(KvPut);
  LUMEN_HANDLER_DECL(KvGet);
  LUMEN_HANDLER_DECL(KvDel);
  LUMEN_HANDLER_DECL(KvKeys);
  LUMEN_HANDLER_DECL(KvExists);
};

class GcsPubSubHandler {
 public:
  virtual ~GcsPubSubHandler() = default;
  LUMEN_HANDLER_DECL(Subscribe);
  LUMEN_HANDLER_DECL(Poll);
  LUMEN_HANDLER_DECL(Unsubscribe);
  LUMEN_HANDLER_DECL(SubscribeKey);
};

class GcsActorHandler {
 public:
  virtual ~GcsActorHandler() = default;
  LUMEN_HANDLER_DECL(CreateActor);
  LUMEN_HANDLER_DECL(GetActorInfo);
  LUMEN_HANDLER_DECL(KillActor);
  LUMEN_HANDLER_DECL(ListActors);
  LUMEN_HANDLER_DECL(ReportActorWorkerExit);
};

class GcsPlacementGroupHandler {
 public:
  virtual ~GcsPlacementGroupHandler() = default;
  LUMEN_HANDLER_DECL(CreatePlacementGroup);
  LUMEN_HANDLER_DECL(RemovePlacementGroup);
  LUMEN_HANDLER_DECL(GetPlacementGroup);
  LUMEN_HANDLER_DECL(WaitPlacementGroup);
  LUMEN_HANDLER_DECL(ListPlacementGroups);
};

class GcsTaskHandler {
 public:
  virtual ~GcsTaskHandler() = default;
  LUMEN_HANDLER_DECL(AddTaskEvents);
  LUMEN_HANDLER_DECL(ListTasks);
};

std::unique_ptr<Service> MakeGcsTaskService(ServiceContext ctx, GcsTaskHandler* handler);
std::unique_ptr<Service> MakeGcsPlacementGroupService(ServiceContext ctx,
                                                      GcsPlacementGroupHandler* handler);
std::unique_ptr<Service> MakeGcsNodeService(ServiceContext ctx, GcsNodeHandler* handler);
std::unique_ptr<Service> MakeGcsJobService(ServiceContext ctx, GcsJobHandler* handler);
std::unique_ptr<Service> MakeGcsKvService(ServiceContext ctx, GcsKvHandler* handler);
std::unique_ptr<Service> MakeGcsPubSubService(ServiceContext ctx, GcsPubSubHandler* handler);
std::unique_ptr<Service> MakeGcsActorService(ServiceContext ctx, GcsActorHandler* handler);

}  // namespace lumen::rpc
