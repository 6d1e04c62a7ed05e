// The dashboard's web page files (dashboard/assets/), compiled into the
// binary at build time (embed_assets.cmake), so nothing is fetched from
// anywhere at run time.
#pragma once

#include <string_view>

namespace lumen::dashboard {

// The file's text; empty for a name that is not one of them.
std::string_view Asset(std::string_view name);

}  // namespace lumen::dashboard
