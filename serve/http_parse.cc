// HTTP request parsing; see http_parse.h.
#include "serve/http_parse.h"

#include <cctype>

#include "absl/strings/ascii.h"

namespace lumen::serve {

namespace beast = boost::beast;
namespace http = beast::http;

Request ToRequest(const http::request<http::string_body>& in) {
  Request r;
  r.method = std::string(in.method_string());
  std::string target(in.target());
  size_t q = target.find('?');
  r.path = UrlDecode(target.substr(0, q), false);
  if (q != std::string::npos) {
    std::string query = target.substr(q + 1);
    size_t start = 0;
    while (start <= query.size()) {
      size_t end = query.find('&', start);
      if (end == std::string::npos) end = query.size();
      std::string pair = query.substr(start, end - start);
      if (!pair.empty()) {
        size_t eq = pair.find('=');
        r.query[UrlDecode(pair.substr(0, eq), true)] =
            eq == std::string::npos ? "" : UrlDecode(pair.substr(eq + 1), true);
      }
      start = end + 1;
    }
  }
  for (const auto& f : in)
    r.headers[absl::AsciiStrToLower(std::string(f.name_string()))] = std::string(f.value());
  r.body = in.body();
  return r;
}

std::string UrlDecode(const std::string& s, bool query) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else if (query && s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

absl::StatusOr<Request> ParseHttpRequest(std::string_view bytes, size_t max_body_bytes,
                                         size_t max_header_bytes) {
  http::request_parser<http::string_body> parser;
  parser.body_limit(max_body_bytes);
  parser.header_limit(static_cast<uint32_t>(max_header_bytes));
  parser.eager(true);
  beast::error_code ec;
  size_t used = 0;
  while (used < bytes.size() && !parser.is_done()) {
    size_t n = parser.put(boost::asio::buffer(bytes.data() + used, bytes.size() - used), ec);
    if (ec == http::error::need_more) break;
    if (ec == http::error::body_limit || ec == http::error::header_limit) {
      return absl::ResourceExhaustedError(ec.message());
    }
    if (ec) return absl::InvalidArgumentError("malformed HTTP request: " + ec.message());
    if (n == 0) break;
    used += n;
  }
  if (!parser.is_done()) {
    // Beast asserts that put_eof follows some bytes.
    if (!parser.got_some()) return absl::InvalidArgumentError("no HTTP request");
    // A body that runs to the end of the connection ends here.
    parser.put_eof(ec);
    if (ec || !parser.is_done()) return absl::InvalidArgumentError("truncated HTTP request");
  }
  if (used != bytes.size()) return absl::InvalidArgumentError("bytes after the request");
  return ToRequest(parser.get());
}

}  // namespace lumen::serve
