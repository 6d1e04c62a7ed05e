// How ids derive from each other (docs/ids.md). Pure functions; any thread.
#pragma once

#include <cstdint>
#include <string_view>

#include "lumen/id.h"

namespace lumen {

// The actor part of a task id for tasks that belong to no actor.
ActorId NilActorIdForJob(const JobId& job);
JobId JobIdOfActor(const ActorId& actor);

// The n-th actor created while running `parent`: 12 bytes of hash(parent,
// n) + the job.
ActorId ActorIdFor(const JobId& job, const TaskId& parent, uint64_t n);
// The task that creates `actor`: unique bytes zero + the actor.
TaskId ActorCreationTaskId(const ActorId& actor);
// The n-th call on `actor` made while running `parent`.
TaskId ActorTaskId(const ActorId& actor, const TaskId& parent, uint64_t n);
ActorId ActorIdOfTask(const TaskId& task);

// A new placement group of `job`: 14 random bytes + the job.
PlacementGroupId NewPlacementGroupId(const JobId& job);
JobId JobIdOfPlacementGroup(const PlacementGroupId& group);

// The root task of a driver: unique bytes zero.
TaskId DriverTaskId(const JobId& job);
// The n-th task submitted by `parent`: unique bytes = hash(parent, n).
TaskId NormalTaskId(const JobId& job, const TaskId& parent, uint64_t n);
JobId JobIdOfTask(const TaskId& task);

// Return value `index` (from 1) of `task`.
ObjectId ReturnObjectId(const TaskId& task, uint32_t index);
// The n-th Put (from 1) made while running `task`.
ObjectId PutObjectId(const TaskId& task, uint32_t n);
TaskId TaskIdOfObject(const ObjectId& object);
uint32_t ObjectIndex(const ObjectId& object);
bool IsPutObject(const ObjectId& object);

// The first 8 bytes of SHA-256(data), for derived unique parts.
uint64_t Hash64(std::string_view data);

}  // namespace lumen
