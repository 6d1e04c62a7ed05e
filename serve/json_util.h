// JSON text from values that may hold bytes that are not UTF-8 (paths,
// headers, user configs, exception messages): nlohmann's dump() throws on
// them; DumpJson writes U+FFFD instead, so untrusted text is data, never an
// exception through an I/O thread.
#pragma once

#include <string>

#include "lumen/serve.h"

namespace lumen::serve {

inline std::string DumpJson(const Json& j, int indent = -1) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

}  // namespace lumen::serve
