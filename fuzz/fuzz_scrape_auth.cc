// Fuzzes the /metrics token check (rpc/scrape_auth.cc): an Authorization
// header from anyone who can reach a GCS's or node manager's metrics port.
// The first byte splits the input into a token and a header.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/escaping.h"
#include "rpc/scrape_auth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t split = std::min<size_t>(data[0], size - 1);
  std::string token(reinterpret_cast<const char*>(data) + 1, split);
  std::string header(reinterpret_cast<const char*>(data) + 1 + split, size - 1 - split);
  bool ok = lumen::rpc::ScrapeAuthorized(header, token);
  // Accepted only with the token in it, as a bearer or a basic password.
  if (ok && token.empty()) __builtin_trap();
  if (ok && header.find(token) == std::string::npos) {
    std::string decoded;
    if (!absl::Base64Unescape(header.substr(6), &decoded) ||
        decoded.find(token) == std::string::npos) {
      __builtin_trap();
    }
  }
  // The right token is always accepted.
  if (!token.empty() && !lumen::rpc::ScrapeAuthorized("Bearer " + token, token)) __builtin_trap();
  if (!token.empty() &&
      !lumen::rpc::ScrapeAuthorized("Basic " + absl::Base64Escape("u:" + token), token)) {
    __builtin_trap();
  }
  return 0;
}
