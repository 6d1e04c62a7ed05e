// Fuzzes the HTTP ingress's request parsing (serve/http_parse.cc): the
// bytes a client sends, parsed with the server's limits, then the Request a
// handler would see.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "serve/http_parse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  // Small limits too, so the fuzzer reaches the limit paths.
  auto r = lumen::serve::ParseHttpRequest(bytes, size % 2 ? 64 : 16 << 20, 64 << 10);
  if (!r.ok()) return 0;
  size_t n = r->method.size() + r->path.size() + r->body.size();
  for (const auto& [k, v] : r->headers) n += k.size() + v.size();
  for (const auto& [k, v] : r->query) n += k.size() + v.size();
  // What a handler does with a request: its header lookup, and the same
  // bytes through the data plane.
  std::string packed = lumen::internal::Serialize(*r);
  auto back =
      lumen::internal::Deserialize<lumen::serve::Request>(packed.data(), packed.size(), "request");
  if (!back.ok() || back->path != r->path || back->body != r->body || back->headers != r->headers ||
      back->query != r->query) {
    __builtin_trap();
  }
  return n == static_cast<size_t>(-1);
}
