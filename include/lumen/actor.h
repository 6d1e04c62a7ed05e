// Actors: instances of a C++ class living in a worker process of the
// cluster, called by method, each caller's calls run in the order it made
// them.
//
//   class Counter {
//    public:
//     static Counter* Create(int start);
//     int Add(int x);
//   };
//   LUMEN_REMOTE(Counter::Create, &Counter::Add);   // in a shared library
//
//   auto c = lumen::Actor(Counter::Create).SetName("counter").SetMaxRestarts(3).Remote(10);
//   auto r = c.Task(&Counter::Add).Remote(1);          // ObjectRef<int>
//   auto same = lumen::GetActor<Counter>("counter");   // StatusOr<ActorHandle<Counter>>
//
// Handles are values: copy them, pass them to tasks and other actors as
// arguments. Thread-safe.
#pragma once

#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "lumen/id.h"
#include "lumen/internal/args.h"
#include "lumen/internal/registry.h"
#include "lumen/internal/runtime.h"
#include "lumen/object_ref.h"

namespace lumen {

class ActorHandleBase {
 public:
  ActorHandleBase() = default;
  explicit ActorHandleBase(const ActorId& id) : id_(id) {}

  const ActorId& ID() const { return id_; }
  bool IsNil() const { return id_.IsNil(); }
  // Waits until the actor is alive (OK) or dead (its cause), or until
  // `timeout_ms` (< 0: forever) passes (DEADLINE_EXCEEDED).
  absl::Status Ready(int64_t timeout_ms = -1) const;

  // Handles travel as their actor id (msgpack).
  template <typename Packer>
  void msgpack_pack(Packer& pk) const {
    pk.pack(id_.Binary());
  }
  void msgpack_unpack(const msgpack::object& o) {
    std::string bytes;
    o.convert(bytes);
    id_ = ActorId::FromBinary(bytes);
  }
  friend bool operator==(const ActorHandleBase& a, const ActorHandleBase& b) {
    return a.id_ == b.id_;
  }

 protected:
  ActorId id_;
};

template <typename T, typename M>
class ActorTaskCaller;

template <typename T>
class ActorHandle : public ActorHandleBase {
 public:
  using ActorHandleBase::ActorHandleBase;
  // A call of `method` (a member of T registered with LUMEN_REMOTE).
  template <typename M>
  ActorTaskCaller<T, M> Task(M method) const {
    return ActorTaskCaller<T, M>(id_, method);
  }
};

template <typename T, typename M>
class ActorTaskCaller {
  using Traits = internal::RemoteFunctionTraits<M>;
  static_assert(std::is_base_of_v<typename Traits::Class, T>,
                "the method must belong to the actor's class");

 public:
  using Result = typename Traits::Result;
  ActorTaskCaller(const ActorId& actor, M method) : actor_(actor), method_(method) {}

  // Submits the call and returns at once; arguments as for lumen::Task.
  template <typename... Args>
  ObjectRef<Result> Remote(Args&&... args) {
    internal::Runtime* rt = internal::CurrentRuntime();
    if (rt == nullptr || actor_.IsNil()) return ObjectRef<Result>();
    const internal::FunctionInfo* info = internal::FindFunctionByKey(internal::KeyOf(method_));
    options_.function_name = info ? info->name : "";
    options_.signature = info ? info->signature : "";
    auto packed = internal::PackArgs<typename Traits::ParamTuple>(std::forward<Args>(args)...);
    return ObjectRef<Result>::AdoptId(rt->SubmitActorTask(actor_, options_, std::move(packed)));
  }

 private:
  ActorId actor_;
  M method_;
  internal::TaskOptions options_;
};

template <typename F>
class ActorCreator;

template <typename T, typename... Params>
class ActorCreator<T* (*)(Params...)> {
 public:
  explicit ActorCreator(T* (*factory)(Params...)) : factory_(factory) {}

  // A name (unique among live actors of the namespace) to find it by.
  ActorCreator& SetName(const std::string& name, const std::string& ns = "") {
    options_.name = name;
    options_.ns = ns;
    return *this;
  }
  // Detached: the actor outlives its job, until killed.
  ActorCreator& SetDetached(bool detached = true) {
    options_.detached = detached;
    return *this;
  }
  // Times it is started again after its process or node dies (-1: always).
  ActorCreator& SetMaxRestarts(int restarts) {
    options_.max_restarts = restarts;
    return *this;
  }
  // Times a call that was running when the actor died is sent again (-1:
  // always).
  ActorCreator& SetMaxTaskRetries(int retries) {
    options_.max_task_retries = retries;
    return *this;
  }
  // Calls run at once on this many threads (1: one at a time, in order).
  ActorCreator& SetMaxConcurrency(int calls) {
    options_.max_concurrency = calls;
    return *this;
  }
  // Resources held for the actor's life (default none).
  ActorCreator& SetResource(const std::string& name, double amount) {
    options_.resources[name] = amount;
    return *this;
  }
  ActorCreator& SetResources(const std::map<std::string, double>& resources) {
    options_.resources = resources;
    return *this;
  }
  // Where to place it: SPREAD, or on a node (soft: elsewhere when that
  // node cannot, or is gone when the actor restarts).
  ActorCreator& SetSchedulingStrategy(const SchedulingStrategy& strategy) {
    options_.strategy = strategy;
    return *this;
  }
  // Place it in a bundle of a placement group (-1: any bundle).
  ActorCreator& SetPlacementGroup(const PlacementGroupId& group, int bundle_index = -1) {
    options_.placement_group = group;
    options_.bundle_index = bundle_index;
    return *this;
  }
  ActorCreator& SetPlacementGroup(const PlacementGroup& group, int bundle_index = -1) {
    return SetPlacementGroup(group.ID(), bundle_index);
  }

  // Starts creating the actor (factory arguments are values) and returns
  // its handle at once.
  template <typename... Args>
  ActorHandle<T> Remote(Args&&... args) {
    static_assert((!IsObjectRef<std::decay_t<Args>>::value && ...),
                  "actor factories take values: Get the ObjectRef first");
    internal::Runtime* rt = internal::CurrentRuntime();
    if (rt == nullptr) return ActorHandle<T>();
    const internal::FunctionInfo* info = internal::FindFunctionByKey(internal::KeyOf(factory_));
    options_.factory_name = info ? info->name : "";
    options_.signature = typeid(T * (Params...)).name();
    options_.class_type = typeid(T).name();
    auto packed = internal::PackArgs<std::tuple<Params...>>(std::forward<Args>(args)...);
    return ActorHandle<T>(rt->CreateActor(options_, std::move(packed)));
  }

 private:
  T* (*factory_)(Params...);
  internal::ActorCreateOptions options_;
};

// Creates an actor with `factory` (a static function returning T*,
// registered with LUMEN_REMOTE).
template <typename T, typename... Params>
ActorCreator<T* (*)(Params...)> Actor(T* (*factory)(Params...)) {
  return ActorCreator<T* (*)(Params...)>(factory);
}

// The live actor named `name` in namespace `ns`. NOT_FOUND if there is none;
// INVALID_ARGUMENT if it is not a T.
template <typename T>
absl::StatusOr<ActorHandle<T>> GetActor(const std::string& name, const std::string& ns = "") {
  internal::Runtime* rt = internal::CurrentRuntime();
  if (rt == nullptr) return absl::FailedPreconditionError("lumen is not initialized");
  auto id = rt->GetNamedActor(name, ns, typeid(T).name());
  if (!id.ok()) return id.status();
  return ActorHandle<T>(*id);
}

// Stops the actor. With `no_restart` (the default) it is dead for good and
// its pending calls fail; otherwise it restarts as after a crash.
absl::Status Kill(const ActorHandleBase& actor, bool no_restart = true);

}  // namespace lumen
