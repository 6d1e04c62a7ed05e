// Typed identifiers for every lumen entity. Each id is a fixed number of raw
// bytes; some embed the id they derive from (an object id starts with the id
// of the task that made it). The derivation rules are in docs/ids.md.
// Value types: cheap to copy, safe to share between threads.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <string_view>

namespace lumen {

template <typename T, size_t N>
class BaseId {
 public:
  static constexpr size_t kSize = N;

  // The nil id: every byte 0xff.
  BaseId() { bytes_.fill(0xff); }
  static T Nil() { return T(); }

  // Returns the nil id when `binary` does not hold exactly kSize bytes.
  static T FromBinary(std::string_view binary) {
    T id;
    if (binary.size() == N) std::memcpy(id.bytes_.data(), binary.data(), N);
    return id;
  }
  // Returns the nil id when `hex` is not 2*kSize hex digits.
  static T FromHex(std::string_view hex) {
    T id;
    if (hex.size() != 2 * N) return id;
    for (size_t i = 0; i < N; ++i) {
      int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
      if (hi < 0 || lo < 0) return T();
      id.bytes_[i] = static_cast<uint8_t>(hi * 16 + lo);
    }
    return id;
  }
  static T FromRandom() {
    thread_local std::mt19937_64 gen{std::random_device{}()};
    T id;
    for (size_t i = 0; i < N; i += 8) {
      uint64_t r = gen();
      std::memcpy(id.bytes_.data() + i, &r, std::min<size_t>(8, N - i));
    }
    return id;
  }

  bool IsNil() const {
    return std::all_of(bytes_.begin(), bytes_.end(), [](uint8_t b) { return b == 0xff; });
  }
  std::string Binary() const { return std::string(reinterpret_cast<const char*>(data()), N); }
  std::string Hex() const {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out(2 * N, '0');
    for (size_t i = 0; i < N; ++i) {
      out[2 * i] = kDigits[bytes_[i] >> 4];
      out[2 * i + 1] = kDigits[bytes_[i] & 0xf];
    }
    return out;
  }
  // A short prefix of Hex(), for logs and messages.
  std::string Short() const { return Hex().substr(0, std::min<size_t>(2 * N, 12)); }

  const uint8_t* data() const { return bytes_.data(); }
  uint8_t* mutable_data() { return bytes_.data(); }
  size_t Hash() const {
    // Ids are random or derived from hashes: the first bytes mix well enough.
    size_t h = 0;
    std::memcpy(&h, bytes_.data(), std::min(sizeof(h), N));
    return h ^ (N > sizeof(h) ? bytes_[N - 1] : 0);
  }

  friend bool operator==(const BaseId& a, const BaseId& b) { return a.bytes_ == b.bytes_; }
  friend bool operator!=(const BaseId& a, const BaseId& b) { return a.bytes_ != b.bytes_; }
  friend bool operator<(const BaseId& a, const BaseId& b) { return a.bytes_ < b.bytes_; }

 protected:
  static int HexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  std::array<uint8_t, N> bytes_;
};

// A job: one driver program and everything it starts. Assigned by the GCS
// from a counter; 4 bytes, big-endian.
class JobId : public BaseId<JobId, 4> {
 public:
  static JobId FromInt(uint32_t v) {
    JobId id;
    for (int i = 0; i < 4; ++i) id.bytes_[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
    return id;
  }
  uint32_t ToInt() const {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | bytes_[i];
    return v;
  }
};

// 12 unique bytes + the JobId.
class ActorId : public BaseId<ActorId, 16> {};
// 8 unique bytes + the ActorId (nil-unique for tasks that belong to no actor).
class TaskId : public BaseId<TaskId, 24> {};
// The TaskId that made it + a 4-byte index (returns from 1, puts with the top bit set).
class ObjectId : public BaseId<ObjectId, 28> {};
// Random.
class NodeId : public BaseId<NodeId, 16> {};
class WorkerId : public BaseId<WorkerId, 16> {};
class LeaseId : public BaseId<LeaseId, 16> {};
// 14 unique bytes + the JobId.
class PlacementGroupId : public BaseId<PlacementGroupId, 18> {};

struct IdHash {
  template <typename T, size_t N>
  size_t operator()(const BaseId<T, N>& id) const {
    return id.Hash();
  }
};

}  // namespace lumen

#define LUMEN_DEFINE_ID_HASH(T)                                       \
  template <>                                                         \
  struct std::hash<lumen::T> {                                        \
    size_t operator()(const lumen::T& id) const { return id.Hash(); } \
  };
LUMEN_DEFINE_ID_HASH(JobId)
LUMEN_DEFINE_ID_HASH(ActorId)
LUMEN_DEFINE_ID_HASH(TaskId)
LUMEN_DEFINE_ID_HASH(ObjectId)
LUMEN_DEFINE_ID_HASH(NodeId)
LUMEN_DEFINE_ID_HASH(WorkerId)
LUMEN_DEFINE_ID_HASH(LeaseId)
LUMEN_DEFINE_ID_HASH(PlacementGroupId)
#undef LUMEN_DEFINE_ID_HASH
