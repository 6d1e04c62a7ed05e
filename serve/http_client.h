// A blocking HTTP/1.1 client for the CLI and tests (one request per
// connection). Thread-safe: each call uses its own connection.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "lumen/serve.h"

namespace lumen::serve {

// UNAVAILABLE when nothing listens or the connection breaks; any HTTP
// status is a Response.
absl::StatusOr<Response> HttpCall(const std::string& host, int port, const std::string& method,
                                  const std::string& target, const std::string& body = "",
                                  const std::map<std::string, std::string>& headers = {},
                                  int64_t timeout_ms = 30'000);

}  // namespace lumen::serve
