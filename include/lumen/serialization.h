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

// A packed numeric vector is a msgpack ext32 (always the 6-byte header, so a
// top-level value's payload starts at a known offset) whose body is one
// count byte, that many pad bytes, then the raw little-endian values. The
// pad puts a top-level payload at offset 8, so readers can use it in place.
inline constexpr size_t kPackedHeaderBytes = 8;  // ext32 header + count + pad

inline void WritePackedHeader(char* out, size_t payload_bytes, int8_t code) {
  const uint32_t body = static_cast<uint32_t>(payload_bytes + 2);
  out[0] = static_cast<char>(0xc9);
  out[1] = static_cast<char>(body >> 24);
  out[2] = static_cast<char>(body >> 16);
  out[3] = static_cast<char>(body >> 8);
  out[4] = static_cast<char>(body);
  out[5] = static_cast<char>(code);
  out[6] = 1;  // one pad byte follows
  out[7] = 0;
}

// The values inside a packed-vector ext body; false if it is not one of
// `code` with `element_size`-sized elements.
inline bool PackedPayload(int8_t type, const char* body, size_t body_size, int8_t code,
                          size_t element_size, const char** data, size_t* bytes) {
  if (type != code || body_size < 1) return false;
  size_t pad = static_cast<unsigned char>(body[0]);
  if (1 + pad > body_size || (body_size - 1 - pad) % element_size != 0) return false;
  *data = body + 1 + pad;
  *bytes = body_size - 1 - pad;
  return true;
}

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

#define LUMEN_MSGPACK_PACKED_VECTOR(T)                                                          \
  template <>                                                                                   \
  struct pack<std::vector<T>> {                                                                 \
    template <typename Stream>                                                                  \
    packer<Stream>& operator()(packer<Stream>& o, const std::vector<T>& v) const {              \
      char header[::lumen::internal::kPackedHeaderBytes];                                       \
      ::lumen::internal::WritePackedHeader(header, v.size() * sizeof(T),                        \
                                           ::lumen::internal::PackedVectorCode<T>::kCode);      \
      o.pack_ext_body(header, sizeof(header));                                                  \
      o.pack_ext_body(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));           \
      return o;                                                                                 \
    }                                                                                           \
  };                                                                                            \
  template <>                                                                                   \
  struct convert<std::vector<T>> {                                                              \
    const msgpack::object& operator()(const msgpack::object& o, std::vector<T>& v) const {      \
      if (o.type == msgpack::type::ARRAY) { /* written by plain msgpack */                      \
        v.resize(o.via.array.size);                                                             \
        for (uint32_t i = 0; i < o.via.array.size; ++i) o.via.array.ptr[i].convert(v[i]);       \
        return o;                                                                               \
      }                                                                                         \
      const char* data = nullptr;                                                               \
      size_t bytes = 0;                                                                         \
      if (o.type != msgpack::type::EXT ||                                                       \
          !::lumen::internal::PackedPayload(o.via.ext.type(), o.via.ext.data(), o.via.ext.size, \
                                            ::lumen::internal::PackedVectorCode<T>::kCode,      \
                                            sizeof(T), &data, &bytes)) {                        \
        throw msgpack::type_error();                                                            \
      }                                                                                         \
      v.resize(bytes / sizeof(T));                                                              \
      if (bytes > 0) std::memcpy(v.data(), data, bytes);                                        \
      return o;                                                                                 \
    }                                                                                           \
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

// msgpack output streams: appending to a string, counting bytes, or writing
// into memory already sized for the value.
struct StringWriter {
  std::string* out;
  void write(const char* data, size_t n) { out->append(data, n); }
};
struct SizeCounter {
  size_t size = 0;
  void write(const char*, size_t n) { size += n; }
};
struct SpanWriter {
  char* next;
  void write(const char* data, size_t n) {
    std::memcpy(next, data, n);
    next += n;
  }
};

template <typename T>
std::string Serialize(const T& value) {
  std::string out;
  StringWriter writer{&out};
  msgpack::pack(writer, value);
  return out;
}

template <typename T>
size_t SerializedSize(const T& value) {
  SizeCounter counter;
  msgpack::pack(counter, value);
  return counter.size;
}

// Writes exactly SerializedSize(value) bytes at `dst`.
template <typename T>
void SerializeTo(const T& value, char* dst) {
  SpanWriter writer{dst};
  msgpack::pack(writer, value);
}

inline std::string SerializeNil() { return Serialize(msgpack::type::nil_t()); }

// Unpacks into `out`; the bytes are referenced, not copied, while unpacking.
// InvalidArgument (naming `what` and the expected type) on a mismatch, and
// on bytes that are not one whole msgpack value or nest deeper than 64.
// The bytes may be hostile: a first pass, which builds nothing, checks that
// every element a container header claims is really there, so what the
// second pass allocates is bounded by `size` (about 16 bytes an element)
// rather than by what the headers claim.
template <typename T>
absl::Status DeserializeInto(const char* data, size_t size, T* out, const std::string& what) {
  constexpr size_t kMaxDepth = 64;
  try {
    msgpack::null_visitor check;
    if (!msgpack::parse(data, size, check)) {
      throw msgpack::insufficient_bytes("truncated or malformed msgpack");
    }
    // No container can hold more elements, nor a string more bytes, than
    // the input has bytes (a map entry takes two).
    const msgpack::unpack_limit limit(/*array=*/size, /*map=*/size / 2, /*str=*/size,
                                      /*bin=*/size, /*ext=*/size, /*depth=*/kMaxDepth);
    msgpack::object_handle handle = msgpack::unpack(
        data, size, +[](msgpack::type::object_type, size_t, void*) { return true; }, nullptr,
        limit);
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
