// Actor calls for code that runs on an event loop (the serve controller,
// manager and proxies): the answer comes back to the loop as a callback
// instead of a blocking Get, so the loop never waits on the engine.
#pragma once

#include <functional>
#include <memory>
#include <utility>

#include "absl/status/statusor.h"
#include "common/event_loop.h"
#include "lumen/api.h"

namespace lumen::serve {

// Runs `done` on `guard`'s loop with the value of `ref` (or its error), once
// it is ready; `ref` is kept alive until then. Dropped if the guard closed.
template <typename T>
void WhenReady(ObjectRef<T> ref, std::shared_ptr<LoopGuard> guard,
               std::function<void(absl::StatusOr<T>)> done) {
  lumen::internal::Runtime* rt = lumen::internal::CurrentRuntime();
  if (rt == nullptr || ref.IsNil()) {
    guard->Post("serve.call_failed", [done = std::move(done)] {
      done(absl::FailedPreconditionError("lumen is not initialized"));
    });
    return;
  }
  ObjectId id = ref.ID();
  rt->OnReady(id, [ref = std::move(ref), guard, done = std::move(done)](
                      absl::StatusOr<std::shared_ptr<lumen::internal::Buffer>> got) mutable {
    absl::StatusOr<T> value = absl::UnknownError("no answer");
    if (!got.ok()) {
      value = got.status();
    } else {
      T v{};
      absl::Status s =
          lumen::internal::DeserializeInto((*got)->data(), (*got)->size(), &v, "an actor's answer");
      if (s.ok()) {
        value = std::move(v);
      } else {
        value = s;
      }
    }
    guard->Post("serve.call_done",
                [ref = std::move(ref), done = std::move(done), value = std::move(value)]() mutable {
                  done(std::move(value));
                });
  });
}

}  // namespace lumen::serve
