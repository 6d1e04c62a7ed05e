// Packing call arguments (values or ObjectRefs) into TaskArgs for the
// runtime; shared by task and actor calls. Not for direct use.
#pragma once

#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "lumen/internal/runtime.h"
#include "lumen/object_ref.h"
#include "lumen/serialization.h"

namespace lumen::internal {

// One argument for a parameter of type P: an ObjectRef<P> travels as a
// reference; anything else is converted to P and serialized.
template <typename P, typename A>
TaskArg PackArg(A&& arg) {
  TaskArg out;
  using D = std::decay_t<A>;
  if constexpr (IsObjectRef<D>::value) {
    static_assert(std::is_same_v<typename D::ValueType, P>,
                  "an ObjectRef argument must hold the parameter's type");
    out.is_ref = true;
    out.ref = arg.ID();
  } else if constexpr (std::is_same_v<D, P>) {
    out.value = Serialize(arg);
  } else {
    static_assert(std::is_constructible_v<P, A&&>,
                  "argument cannot be converted to the parameter's type");
    out.value = Serialize(P(std::forward<A>(arg)));
  }
  return out;
}

template <typename ParamTuple, typename... Args, size_t... I>
std::vector<TaskArg> PackArgsImpl(std::index_sequence<I...>, Args&&... args) {
  std::vector<TaskArg> packed;
  packed.reserve(sizeof...(Args));
  (packed.push_back(
       PackArg<std::decay_t<std::tuple_element_t<I, ParamTuple>>>(std::forward<Args>(args))),
   ...);
  return packed;
}

// Packs `args` for a function whose parameters are the types in ParamTuple.
template <typename ParamTuple, typename... Args>
std::vector<TaskArg> PackArgs(Args&&... args) {
  static_assert(sizeof...(Args) == std::tuple_size_v<ParamTuple>,
                "Remote() needs one argument per parameter of the function");
  return PackArgsImpl<ParamTuple>(std::index_sequence_for<Args...>{}, std::forward<Args>(args)...);
}

}  // namespace lumen::internal
