// JSON text from values that may hold bytes that are not UTF-8 (paths,
// headers, user configs, exception messages): nlohmann's dump() throws on
// them; DumpJson writes U+FFFD instead, so untrusted text is data, never an
// exception through an I/O thread.
#pragma once

#include <string>
#include <string_view>

#include "lumen/serve.h"

namespace lumen::serve {

inline std::string DumpJson(const Json& j, int indent = -1) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

// How deep untrusted JSON may nest: dump() and copies recurse once per
// level, so a 200 KB body of brackets would otherwise overflow the stack.
inline constexpr int kMaxJsonDepth = 256;

// Parses untrusted JSON text without exceptions: a discarded value
// (is_discarded()) when it is not JSON or nests deeper than `max_depth`
// (then *too_deep, when given, is set).
inline Json ParseJson(std::string_view text, bool* too_deep = nullptr,
                      int max_depth = kMaxJsonDepth) {
  bool deep = false;
  Json j = Json::parse(
      text,
      [&](int depth, Json::parse_event_t event, Json&) {
        if ((event == Json::parse_event_t::object_start ||
             event == Json::parse_event_t::array_start) &&
            depth >= max_depth) {
          deep = true;
        }
        return !deep;
      },
      /*allow_exceptions=*/false);
  if (too_deep != nullptr) *too_deep = deep;
  return deep ? Json(Json::value_t::discarded) : j;
}

}  // namespace lumen::serve
