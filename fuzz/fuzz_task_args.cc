// Fuzzes unpacking a task's arguments (include/lumen/serialization.h): the
// bytes of a call from another process, into a few argument types, packed
// numeric vectors (msgpack ext) among them.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "lumen/serialization.h"

namespace {

// Unpacks into T; on success packs it again, and that must unpack to the
// same value.
template <typename T>
void RoundTrip(const char* data, size_t size) {
  T value{};
  if (!lumen::internal::DeserializeInto(data, size, &value, "argument").ok()) return;
  std::string again = lumen::internal::Serialize(value);
  if (again.size() != lumen::internal::SerializedSize(value)) __builtin_trap();
  T back{};
  if (!lumen::internal::DeserializeInto(again.data(), again.size(), &back, "argument").ok()) {
    __builtin_trap();
  }
  if (lumen::internal::Serialize(back) != again) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* bytes = reinterpret_cast<const char*>(data);
  RoundTrip<std::tuple<int, std::string, std::vector<float>>>(bytes, size);
  RoundTrip<std::map<std::string, std::vector<int64_t>>>(bytes, size);
  RoundTrip<std::vector<double>>(bytes, size);
  RoundTrip<std::vector<std::string>>(bytes, size);
  return 0;
}
