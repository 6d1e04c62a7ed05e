// See scrape_auth.h.
#include "rpc/scrape_auth.h"

#include <openssl/crypto.h>

#include <string>

#include "absl/strings/escaping.h"

namespace lumen::rpc {
namespace {

bool SameSecret(std::string_view a, std::string_view b) {
  return !b.empty() && a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

bool ScrapeAuthorized(std::string_view authorization, std::string_view token) {
  constexpr std::string_view kBearer = "Bearer ", kBasic = "Basic ";
  if (authorization.substr(0, kBearer.size()) == kBearer) {
    return SameSecret(authorization.substr(kBearer.size()), token);
  }
  if (authorization.substr(0, kBasic.size()) == kBasic) {
    std::string decoded;
    std::string_view encoded = authorization.substr(kBasic.size());
    if (!absl::Base64Unescape(absl::string_view(encoded.data(), encoded.size()), &decoded)) {
      return false;
    }
    size_t colon = decoded.find(':');
    return colon != std::string::npos &&
           SameSecret(std::string_view(decoded).substr(colon + 1), token);
  }
  return false;
}

}  // namespace lumen::rpc
