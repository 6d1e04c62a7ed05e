// Fuzzes the serving data plane's receiving side: bytes from a peer cut
// into frames (serve/frame.h) in pieces of varying size, and every payload
// unpacked into a Request, as a replica does.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "lumen/serialization.h"
#include "lumen/serve.h"
#include "serve/frame.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // The first byte picks how the stream is split and the payload limit.
  const size_t step = 1 + data[0] % 31;
  const uint32_t max_payload = data[0] & 0x80 ? 64 : 1u << 30;
  std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);
  lumen::serve::FrameReader reader(max_payload);
  size_t fed = 0, taken = 0;
  bool failed = false;
  for (size_t at = 0; at < stream.size(); at += step) {
    std::string_view piece = stream.substr(at, step);
    if (!reader.Feed(piece)) {
      failed = true;
      if (reader.error().empty()) __builtin_trap();
    }
    fed += piece.size();
    uint64_t id = 0;
    std::string payload;
    while (reader.Next(&id, &payload)) {
      if (payload.size() > max_payload) __builtin_trap();
      taken += lumen::serve::kFrameHeaderBytes + payload.size();
      lumen::serve::Request request;
      (void)lumen::internal::DeserializeInto(payload.data(), payload.size(), &request, "request");
    }
    if (failed) break;
  }
  // Without an error nothing is lost: taken + still buffered = fed.
  if (!failed && taken + reader.buffered() != fed) __builtin_trap();
  return 0;
}
