// The table of remote functions: LUMEN_REMOTE(f, g, ...) registers each
// function under its name when its shared library loads, with an invoker
// that unpacks arguments, calls it and packs the result. Drivers find a
// function's name by its address; workers find the function by name.
// Registration happens at load time; lookups are thread-safe afterwards.
#pragma once

#include <cstddef>
#include <functional>
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

struct FunctionInfo {
  std::string name;
  std::string key;        // bytes of the function pointer
  std::string signature;  // mangled function type
  Invoker invoke;
  const void* anchor;  // an address inside the library that registered it
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

template <typename R, typename... Params>
absl::StatusOr<std::string> Invoke(R (*f)(Params...), const std::string& name,
                                   const std::vector<ArgView>& args) {
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
      std::apply(f, std::move(values));
      return SerializeNil();
    } else {
      return Serialize(std::apply(f, std::move(values)));
    }
  } catch (const std::exception& e) {
    return UserError(name, Demangle(typeid(e).name()), e.what());
  } catch (...) {
    return UserError(name, "an exception of unknown type", "");
  }
}

template <typename F>
struct RemoteFunctionTraits;
template <typename R, typename... Params>
struct RemoteFunctionTraits<R (*)(Params...)> {
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
    (void)sizeof(RemoteFunctionTraits<R (*)(Params...)>);
    RegisterFunction(FunctionInfo{
        name, KeyOf(f), typeid(R(Params...)).name(),
        [f, name](const std::vector<ArgView>& args) { return Invoke(f, name, args); }, this});
  }
};

}  // namespace lumen::internal

#define LUMEN_REMOTE_CONCAT_INNER(a, b) a##b
#define LUMEN_REMOTE_CONCAT(a, b) LUMEN_REMOTE_CONCAT_INNER(a, b)

// Registers remote functions by name: LUMEN_REMOTE(Add, Sum);
// Put it in the shared library that defines them (the job's code package).
#define LUMEN_REMOTE(...)                                                              \
  static ::lumen::internal::Registrar LUMEN_REMOTE_CONCAT(lumen_remote_, __COUNTER__)( \
      #__VA_ARGS__, __VA_ARGS__)
