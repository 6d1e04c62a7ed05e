// Fuzzes what lumen does with a JSON request body: parse it as the serve
// manager's admin API and Request::JsonBody do (nlohmann), write it back
// with DumpJson (serve/json_util.h, as Response::FromJson does), and the
// text written must parse again to the same text.
//
// Bodies are parsed with serve::ParseJson, which refuses nesting deeper
// than LUMEN_FUZZ_JSON_MAX_DEPTH (default 256, lumen's kMaxJsonDepth):
// nlohmann's dump() recurses once a level and overflowed the stack at a
// depth a 200 KB body reaches (fuzz/regressions/fuzz_json_body). 0 drives
// the unbounded nlohmann parse, to see that crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "serve/json_util.h"

namespace {

int MaxDepth() {
  static const int depth = [] {
    const char* env = std::getenv("LUMEN_FUZZ_JSON_MAX_DEPTH");
    return env != nullptr ? std::atoi(env) : 256;
  }();
  return depth;
}

// Parses `text` as lumen does, refusing (discarded) deeper than MaxDepth().
lumen::Json ParseBody(std::string_view text) {
  const int max_depth = MaxDepth();
  if (max_depth <= 0) return lumen::Json::parse(text, nullptr, /*allow_exceptions=*/false);
  return lumen::serve::ParseJson(text, nullptr, max_depth);  // what lumen parses bodies with
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  lumen::Json j = ParseBody(body);
  if (j.is_discarded()) return 0;
  std::string text = lumen::serve::DumpJson(j);
  lumen::Json again = lumen::Json::parse(text, nullptr, false);
  if (again.is_discarded()) __builtin_trap();
  if (lumen::serve::DumpJson(again) != text) __builtin_trap();
  return 0;
}
