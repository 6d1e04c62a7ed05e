// The serving data plane's frame format (serve/channel.cc), apart from the
// sockets so the fuzz target can drive it alone:
//
//   [u32 payload length, little endian][u64 call id, little endian][payload]
//
// FrameReader takes bytes as they arrive and hands back whole frames. Not
// thread-safe: one reader per connection, used by the thread reading it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lumen::serve {

inline constexpr size_t kFrameHeaderBytes = 12;

struct FrameHeader {
  uint32_t length;  // payload bytes after the header
  uint64_t id;      // the call the frame belongs to
};

// Reads the kFrameHeaderBytes at `bytes`.
inline FrameHeader DecodeFrameHeader(const unsigned char* bytes) {
  FrameHeader h{0, 0};
  for (int i = 0; i < 4; ++i) h.length |= static_cast<uint32_t>(bytes[i]) << (8 * i);
  for (int i = 0; i < 8; ++i) h.id |= static_cast<uint64_t>(bytes[4 + i]) << (8 * i);
  return h;
}

// Header and payload as one string. `payload` must fit a u32 length.
inline std::string EncodeFrame(uint64_t id, std::string_view payload) {
  std::string out(kFrameHeaderBytes, '\0');
  auto len = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  for (int i = 0; i < 8; ++i) out[4 + i] = static_cast<char>((id >> (8 * i)) & 0xff);
  out.append(payload);
  return out;
}

// Cuts a byte stream into frames. Every header is checked as soon as its 12
// bytes arrive, so a peer claiming a payload over `max_payload` is refused
// before anything is buffered for it.
class FrameReader {
 public:
  explicit FrameReader(uint32_t max_payload) : max_payload_(max_payload) {}

  // Appends `bytes`. False, with error() saying why, once a frame claims more
  // than max_payload bytes; the reader stays failed (later Feeds return false
  // and keep nothing), though whole frames before the bad one can still be
  // taken with Next.
  bool Feed(std::string_view bytes) {
    if (!error_.empty()) return false;
    buffer_.append(bytes);
    while (checked_ + kFrameHeaderBytes <= buffer_.size()) {
      FrameHeader h =
          DecodeFrameHeader(reinterpret_cast<const unsigned char*>(buffer_.data() + checked_));
      if (h.length > max_payload_) {
        error_ = "a frame of " + std::to_string(h.length) + " bytes; at most " +
                 std::to_string(max_payload_);
        buffer_.resize(checked_);  // keep only the whole frames before it
        return false;
      }
      checked_ += kFrameHeaderBytes + h.length;
    }
    return true;
  }

  // The next whole frame, if one has arrived.
  bool Next(uint64_t* id, std::string* payload) {
    if (buffer_.size() - start_ < kFrameHeaderBytes) return false;
    FrameHeader h =
        DecodeFrameHeader(reinterpret_cast<const unsigned char*>(buffer_.data() + start_));
    if (buffer_.size() - start_ - kFrameHeaderBytes < h.length) return false;
    *id = h.id;
    payload->assign(buffer_, start_ + kFrameHeaderBytes, h.length);
    start_ += kFrameHeaderBytes + h.length;
    // Drop what was taken once it is most of the buffer (amortized O(1)).
    if (start_ == buffer_.size() || start_ >= buffer_.size() / 2) {
      buffer_.erase(0, start_);
      checked_ -= start_;
      start_ = 0;
    }
    return true;
  }

  // Why Feed failed; empty while it has not.
  const std::string& error() const { return error_; }
  // Bytes received and not yet taken by Next.
  size_t buffered() const { return buffer_.size() - start_; }

 private:
  uint32_t max_payload_;
  std::string buffer_;
  size_t start_ = 0;    // the first byte Next has not taken
  size_t checked_ = 0;  // the first header Feed has not checked (may lie past the end)
  std::string error_;
};

}  // namespace lumen::serve
