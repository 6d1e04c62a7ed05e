// Turning the bytes of an HTTP/1.1 request into a lumen Request: Beast's
// parser with the server's limits, URL decoding and the query string. Kept
// apart from the server so the fuzz target can drive it alone.
#pragma once

#include <boost/beast/http.hpp>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "lumen/serve.h"

namespace lumen::serve {

// The request Beast parsed, as handlers see it: path and query decoded,
// header names in lower case. Bytes that are not UTF-8 stay bytes.
Request ToRequest(const boost::beast::http::request<boost::beast::http::string_body>& in);

// "a%20b" -> "a b"; '+' stays '+' in paths, becomes ' ' in queries.
std::string UrlDecode(const std::string& s, bool query);

// Parses one whole HTTP/1.1 request from `bytes` with the server's parser
// and limits (what the fuzz target drives). InvalidArgument when the bytes
// are not exactly one request, ResourceExhausted past a limit.
absl::StatusOr<Request> ParseHttpRequest(std::string_view bytes, size_t max_body_bytes = 16 << 20,
                                         size_t max_header_bytes = 64 << 10);

}  // namespace lumen::serve
