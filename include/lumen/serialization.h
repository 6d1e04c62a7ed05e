// How lumen turns values into bytes and back: msgpack, as Ray's C++ API does.
// User types opt in with MSGPACK_DEFINE(field, ...). Vectors of numbers are
// packed as raw bytes (a msgpack ext) instead of element by element, so large
// numeric arrays cost one copy. Thread-safe.
#pragma once

#ifndef MSGPACK_NO_BOOST
#define MSGPACK_NO_BOOST
#endif

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include "absl/status/statusor.h"
#include "msgpack.hpp"

namespace lumen::internal {

// msgpack ext type codes of packed numeric vectors.
template <typename T>
struct PackedVectorCode;
#define LUMEN_PACKED_VECTOR_CODE(T, CODE) \
  template <>                             \
  struct PackedVectorCode<T> {            \
    static constexpr int8_t kCode = CODE; \
  };
LUMEN_PACKED_VECTOR_CODE(int16_t, 3)
LUMEN_PACKED_VECTOR_CODE(uint16_t, 4)
LUMEN_PACKED_VECTOR_CODE(int32_t, 5)
LUMEN_PACKED_VECTOR_CODE(uint32_t, 6)
LUMEN_PACKED_VECTOR_CODE(int64_t, 7)
LUMEN_PACKED_VECTOR_CODE(uint64_t, 8)
LUMEN_PACKED_VECTOR_CODE(float, 9)
LUMEN_PACKED_VECTOR_CODE(double, 10)
#undef LUMEN_PACKED_VECTOR_CODE

// Demangled name of a type, for error messages.
std::string Demangle(const char* mangled);
template <typename T>
std::string TypeName() {
  return Demangle(typeid(T).name());
}

}  // namespace lumen::internal

namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS) {
  namespace adaptor {

#define LUMEN_MSGPACK_PACKED_VECTOR(T)                                                     \
  template <>                                                                              \
  struct pack<std::vector<T>> {                                                            \
    template <typename Stream>                                                             \
    packer<Stream>& operator()(packer<Stream>& o, const std::vector<T>& v) const {         \
      const uint32_t bytes = static_cast<uint32_t>(v.size() * sizeof(T));                  \
      o.pack_ext(bytes, ::lumen::internal::PackedVectorCode<T>::kCode);                    \
      o.pack_ext_body(reinterpret_cast<const char*>(v.data()), bytes);                     \
      return o;                                                                            \
    }                                                                                      \
  };                                                                                       \
  template <>                                                                              \
  struct convert<std::vector<T>> {                                                         \
    const msgpack::object& operator()(const msgpack::object& o, std::vector<T>& v) const { \
      if (o.type == msgpack::type::ARRAY) { /* written by plain msgpack */                 \
        v.resize(o.via.array.size);                                                        \
        for (uint32_t i = 0; i < o.via.array.size; ++i) o.via.array.ptr[i].convert(v[i]);  \
        return o;                                                                          \
      }                                                                                    \
      if (o.type != msgpack::type::EXT ||                                                  \
          o.via.ext.type() != ::lumen::internal::PackedVectorCode<T>::kCode ||             \
          o.via.ext.size % sizeof(T) != 0) {                                               \
        throw msgpack::type_error();                                                       \
      }                                                                                    \
      v.resize(o.via.ext.size / sizeof(T));                                                \
      if (!v.empty()) std::memcpy(v.data(), o.via.ext.data(), o.via.ext.size);             \
      return o;                                                                            \
    }                                                                                      \
  };
  LUMEN_MSGPACK_PACKED_VECTOR(int16_t)
  LUMEN_MSGPACK_PACKED_VECTOR(uint16_t)
  LUMEN_MSGPACK_PACKED_VECTOR(int32_t)
  LUMEN_MSGPACK_PACKED_VECTOR(uint32_t)
  LUMEN_MSGPACK_PACKED_VECTOR(int64_t)
  LUMEN_MSGPACK_PACKED_VECTOR(uint64_t)
  LUMEN_MSGPACK_PACKED_VECTOR(float)
  LUMEN_MSGPACK_PACKED_VECTOR(double)
#undef LUMEN_MSGPACK_PACKED_VECTOR

  }  // namespace adaptor
}
}  // namespace msgpack

namespace lumen::internal {

template <typename T>
std::string Serialize(const T& value) {
  msgpack::sbuffer buffer;
  msgpack::pack(buffer, value);
  return std::string(buffer.data(), buffer.size());
}

inline std::string SerializeNil() {
  msgpack::sbuffer buffer;
  msgpack::pack(buffer, msgpack::type::nil_t());
  return std::string(buffer.data(), buffer.size());
}

// Unpacks into `out`; the bytes are referenced, not copied, while unpacking.
// InvalidArgument (naming `what` and the expected type) on a mismatch.
template <typename T>
absl::Status DeserializeInto(const char* data, size_t size, T* out, const std::string& what) {
  try {
    msgpack::object_handle handle = msgpack::unpack(
        data, size, +[](msgpack::type::object_type, size_t, void*) { return true; });
    handle.get().convert(*out);
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(what + " is not a " + TypeName<T>() + " (" + e.what() +
                                      "): was the caller built against the same code?");
  }
}

template <typename T>
absl::StatusOr<T> Deserialize(const char* data, size_t size, const std::string& what) {
  T value{};
  absl::Status s = DeserializeInto(data, size, &value, what);
  if (!s.ok()) return s;
  return value;
}

}  // namespace lumen::internal
