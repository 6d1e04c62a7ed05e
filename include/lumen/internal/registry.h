// The table of remote functions: LUMEN_REMOTE(f, g, ...) registers each
// function under its name when its shared library loads, with an invoker
// that unpacks arguments, calls it and packs the result. Drivers find a
// function's name by its address; workers find the function by name.
// Registration happens at load time; lookups are thread-safe afterwards.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "lumen/object_ref.h"
#include "lumen/serialization.h"

namespace lumen::internal {

struct ArgView {
  const char* data;
  size_t size;
};

using Invoker = std::function<absl::StatusOr<std::string>(const std::vector<ArgView>&)>;
// Makes an actor instance (owned by the returned pointer).
using ActorFactory =
    std::function<absl::StatusOr<std::shared_ptr<void>>(const std::vector<ArgView>&)>;
// Calls a method on an actor instance.
using MethodInvoker =
    std::function<absl::StatusOr<std::string>(void* instance, const std::vector<ArgView>&)>;

struct FunctionInfo {
  enum class Kind { kFunction, kActorFactory, kActorMethod };
  Kind kind = Kind::kFunction;
  std::string name;
  std::string key;         // bytes of the function (or member) pointer
  std::string signature;   // mangled function type
  std::string class_type;  // actor factories and methods: mangled class type
  Invoker invoke;          // kFunction
  ActorFactory create;     // kActorFactory
  MethodInvoker call;      // kActorMethod
  const void* anchor;      // an address inside the library that registered it
};

void RegisterFunction(FunctionInfo info);
const FunctionInfo* FindFunctionByName(const std::string& name);
const FunctionInfo* FindFunctionByKey(const std::string& key);
std::vector<const FunctionInfo*> AllFunctions();
// "f, ns::g, &C::m" -> {"f", "ns::g", "C::m"}; commas inside <> or () are kept.
std::vector<std::string> SplitNames(const char* names);

// The error a user function's exception becomes.
absl::Status UserError(const std::string& function, const std::string& type,
                       const std::string& what);

template <typename F>
std::string KeyOf(F f) {
  return std::string(reinterpret_cast<const char*>(&f), sizeof(f));
}

template <typename... Params, size_t... I>
absl::Status UnpackArgs(std::tuple<std::decay_t<Params>...>& values,
                        const std::vector<ArgView>& args, const std::string& name,
                        std::index_sequence<I...>) {
  absl::Status status;
  ((status.ok() ? (status = DeserializeInto(args[I].data, args[I].size, &std::get<I>(values),
                                            "argument " + std::to_string(I + 1) + " of " + name))
                : status),
   ...);
  return status;
}

// Unpacks `args` into the parameter types, calls `call(values...)` and packs
// the result; a user exception becomes UserError.
template <typename R, typename... Params, typename Call>
absl::StatusOr<std::string> InvokeWith(const std::string& name, const std::vector<ArgView>& args,
                                       Call&& call) {
  if (args.size() != sizeof...(Params)) {
    return absl::InvalidArgumentError(name + " takes " + std::to_string(sizeof...(Params)) +
                                      " arguments, but the call passed " +
                                      std::to_string(args.size()));
  }
  std::tuple<std::decay_t<Params>...> values;
  absl::Status unpacked =
      UnpackArgs<Params...>(values, args, name, std::index_sequence_for<Params...>{});
  if (!unpacked.ok()) return unpacked;
  try {
    if constexpr (std::is_void_v<R>) {
      std::apply(call, std::move(values));
      return SerializeNil();
    } else {
      return Serialize(std::apply(call, std::move(values)));
    }
  } catch (const std::exception& e) {
    return UserError(name, Demangle(typeid(e).name()), e.what());
  } catch (...) {
    return UserError(name, "an exception of unknown type", "");
  }
}

template <typename R, typename... Params>
absl::StatusOr<std::string> Invoke(R (*f)(Params...), const std::string& name,
                                   const std::vector<ArgView>& args) {
  return InvokeWith<R, Params...>(name, args, f);
}

// Calls an actor factory; the instance is deleted with the returned pointer.
template <typename T, typename... Params>
absl::StatusOr<std::shared_ptr<void>> Construct(T* (*factory)(Params...), const std::string& name,
                                                const std::vector<ArgView>& args) {
  T* instance = nullptr;
  absl::StatusOr<std::string> called = InvokeWith<int, Params...>(name, args, [&](auto&&... a) {
    instance = factory(std::forward<decltype(a)>(a)...);
    return 0;
  });
  if (!called.ok()) return called.status();
  if (instance == nullptr) {
    return absl::FailedPreconditionError(name + " returned a null instance");
  }
  return std::shared_ptr<void>(instance, [](void* p) { delete static_cast<T*>(p); });
}

template <typename R, typename... Params>
struct CheckRemoteSignature {
  static_assert(!IsObjectRef<std::decay_t<R>>::value,
                "returning an ObjectRef from a remote function is not supported yet: return the "
                "value itself");
  static_assert(((!std::is_lvalue_reference_v<Params> ||
                  std::is_const_v<std::remove_reference_t<Params>>)&&...),
                "remote function parameters must be values or const references");
  static_assert((!IsObjectRef<std::decay_t<Params>>::value && ...),
                "a remote function takes the value, not an ObjectRef: pass the ObjectRef at the "
                "call and lumen resolves it before the function runs");
};

template <typename F>
struct RemoteFunctionTraits;
template <typename R, typename... Params>
struct RemoteFunctionTraits<R (*)(Params...)> : CheckRemoteSignature<R, Params...> {
  using Result = R;
  using ParamTuple = std::tuple<Params...>;
};
template <typename R, typename C, typename... Params>
struct RemoteFunctionTraits<R (C::*)(Params...)> : CheckRemoteSignature<R, Params...> {
  using Result = R;
  using Class = C;
  using ParamTuple = std::tuple<Params...>;
};
template <typename R, typename C, typename... Params>
struct RemoteFunctionTraits<R (C::*)(Params...) const> : CheckRemoteSignature<R, Params...> {
  using Result = R;
  using Class = C;
  using ParamTuple = std::tuple<Params...>;
};

// A function returning a pointer to a class is an actor factory.
template <typename R>
inline constexpr bool kIsFactoryResult =
    std::is_pointer_v<R>&& std::is_class_v<std::remove_pointer_t<R>>;

class Registrar {
 public:
  template <typename... Fs>
  Registrar(const char* names, Fs... fs) {
    std::vector<std::string> split = SplitNames(names);
    size_t i = 0;
    (Register(split.at(i++), fs), ...);
  }

 private:
  template <typename R, typename... Params>
  void Register(const std::string& name, R (*f)(Params...)) {
    FunctionInfo info;
    info.name = name;
    info.key = KeyOf(f);
    info.signature = typeid(R(Params...)).name();
    info.anchor = this;
    if constexpr (kIsFactoryResult<R>) {
      using T = std::remove_pointer_t<R>;
      info.kind = FunctionInfo::Kind::kActorFactory;
      info.class_type = typeid(T).name();
      info.create = [f, name](const std::vector<ArgView>& args) {
        return Construct(f, name, args);
      };
    } else {
      (void)sizeof(RemoteFunctionTraits<R (*)(Params...)>);
      info.invoke = [f, name](const std::vector<ArgView>& args) { return Invoke(f, name, args); };
    }
    RegisterFunction(std::move(info));
  }

  template <typename R, typename C, typename... Params>
  void Register(const std::string& name, R (C::*m)(Params...)) {
    RegisterMethod<C, R, Params...>(name, m);
  }
  template <typename R, typename C, typename... Params>
  void Register(const std::string& name, R (C::*m)(Params...) const) {
    RegisterMethod<C, R, Params...>(name, m);
  }

  template <typename C, typename R, typename... Params, typename M>
  void RegisterMethod(const std::string& name, M m) {
    (void)sizeof(RemoteFunctionTraits<M>);
    FunctionInfo info;
    info.kind = FunctionInfo::Kind::kActorMethod;
    info.name = name;
    info.key = KeyOf(m);
    info.signature = typeid(R(Params...)).name();
    info.class_type = typeid(C).name();
    info.anchor = this;
    info.call = [m, name](void* instance, const std::vector<ArgView>& args) {
      C* self = static_cast<C*>(instance);
      return InvokeWith<R, Params...>(name, args, [self, m](auto&&... a) -> R {
        return (self->*m)(std::forward<decltype(a)>(a)...);
      });
    };
    RegisterFunction(std::move(info));
  }
};

}  // namespace lumen::internal

#define LUMEN_REMOTE_CONCAT_INNER(a, b) a##b
#define LUMEN_REMOTE_CONCAT(a, b) LUMEN_REMOTE_CONCAT_INNER(a, b)

// Registers remote functions, actor factories and actor methods by name:
//   LUMEN_REMOTE(Add, Sum);
//   LUMEN_REMOTE(Counter::Create, &Counter::Add);   // T* Create(...): a factory
// Put it in the shared library that defines them (the job's code package).
#define LUMEN_REMOTE(...)                                                              \
  static ::lumen::internal::Registrar LUMEN_REMOTE_CONCAT(lumen_remote_, __COUNTER__)( \
      #__VA_ARGS__, __VA_ARGS__)
