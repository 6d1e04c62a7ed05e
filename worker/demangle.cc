// lumen::internal::Demangle (lumen/serialization.h); a file of its own so
// the fuzz targets can compile it without the rest of liblumen.
#include <cxxabi.h>

#include <cstdlib>
#include <string>

#include "lumen/serialization.h"

namespace lumen::internal {

std::string Demangle(const char* mangled) {
  int status = 0;
  char* out = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  if (status != 0 || out == nullptr) return mangled;
  std::string result(out);
  std::free(out);
  return result;
}

}  // namespace lumen::internal
