// Id derivation rules; see docs/ids.md.
#include "common/ids.h"

#include <openssl/sha.h>

#include <cstring>
#include <string>

namespace lumen {
namespace {

constexpr uint32_t kPutBit = 0x80000000u;

template <typename To, typename From>
void CopyTail(const From& from, To* to) {
  static_assert(From::kSize <= To::kSize);
  std::memcpy(to->mutable_data() + (To::kSize - From::kSize), from.data(), From::kSize);
}

template <typename To, typename From>
To Tail(const From& from) {
  To to;
  std::memcpy(to.mutable_data(), from.data() + (From::kSize - To::kSize), To::kSize);
  return to;
}

}  // namespace

uint64_t Hash64(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  uint64_t h;
  std::memcpy(&h, digest, sizeof(h));
  return h;
}

ActorId NilActorIdForJob(const JobId& job) {
  ActorId id;  // unique part stays 0xff
  CopyTail(job, &id);
  return id;
}

JobId JobIdOfActor(const ActorId& actor) { return Tail<JobId>(actor); }

static uint64_t Derive(const TaskId& parent, uint64_t n, char kind) {
  std::string seed = parent.Binary();
  seed.append(reinterpret_cast<const char*>(&n), sizeof(n));
  seed.push_back(kind);
  return Hash64(seed);
}

ActorId ActorIdFor(const JobId& job, const TaskId& parent, uint64_t n) {
  ActorId id;
  uint64_t a = Derive(parent, n, 'a'), b = Derive(parent, n, 'b');
  std::memcpy(id.mutable_data(), &a, 8);
  std::memcpy(id.mutable_data() + 8, &b, 4);
  CopyTail(job, &id);
  return id;
}

TaskId ActorCreationTaskId(const ActorId& actor) {
  TaskId id;
  std::memset(id.mutable_data(), 0, 8);
  CopyTail(actor, &id);
  return id;
}

TaskId ActorTaskId(const ActorId& actor, const TaskId& parent, uint64_t n) {
  TaskId id;
  uint64_t unique = Derive(parent, n, 't');
  std::memcpy(id.mutable_data(), &unique, 8);
  CopyTail(actor, &id);
  return id;
}

ActorId ActorIdOfTask(const TaskId& task) { return Tail<ActorId>(task); }

PlacementGroupId NewPlacementGroupId(const JobId& job) {
  PlacementGroupId id = PlacementGroupId::FromRandom();
  CopyTail(job, &id);
  return id;
}

JobId JobIdOfPlacementGroup(const PlacementGroupId& group) { return Tail<JobId>(group); }

TaskId DriverTaskId(const JobId& job) {
  TaskId id;
  std::memset(id.mutable_data(), 0, 8);
  CopyTail(NilActorIdForJob(job), &id);
  return id;
}

TaskId NormalTaskId(const JobId& job, const TaskId& parent, uint64_t n) {
  std::string seed = parent.Binary();
  seed.append(reinterpret_cast<const char*>(&n), sizeof(n));
  uint64_t unique = Hash64(seed);
  TaskId id;
  std::memcpy(id.mutable_data(), &unique, 8);
  CopyTail(NilActorIdForJob(job), &id);
  return id;
}

JobId JobIdOfTask(const TaskId& task) { return Tail<JobId>(task); }

static ObjectId MakeObjectId(const TaskId& task, uint32_t index) {
  ObjectId id;
  std::memcpy(id.mutable_data(), task.data(), TaskId::kSize);
  for (int i = 0; i < 4; ++i) id.mutable_data()[TaskId::kSize + i] = uint8_t(index >> (24 - 8 * i));
  return id;
}

ObjectId ReturnObjectId(const TaskId& task, uint32_t index) { return MakeObjectId(task, index); }
ObjectId PutObjectId(const TaskId& task, uint32_t n) { return MakeObjectId(task, n | kPutBit); }

TaskId TaskIdOfObject(const ObjectId& object) {
  TaskId id;
  std::memcpy(id.mutable_data(), object.data(), TaskId::kSize);
  return id;
}

uint32_t ObjectIndex(const ObjectId& object) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | object.data()[TaskId::kSize + i];
  return v & ~kPutBit;
}

bool IsPutObject(const ObjectId& object) { return object.data()[TaskId::kSize] & 0x80; }

}  // namespace lumen
