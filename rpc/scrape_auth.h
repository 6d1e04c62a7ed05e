// Whether a /metrics scrape carries the cluster token: its Authorization
// header as `Bearer TOKEN`, or basic auth with TOKEN as the password (any
// user name). Outside input: fuzzed by fuzz/fuzz_scrape_auth.cc.
#pragma once

#include <string_view>

namespace lumen::rpc {

bool ScrapeAuthorized(std::string_view authorization, std::string_view token);

}  // namespace lumen::rpc
