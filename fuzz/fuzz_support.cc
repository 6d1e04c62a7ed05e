// What the fuzz targets need from lumen libraries they do not link.
#include <cxxabi.h>

#include <cstdlib>
#include <string>

namespace lumen::internal {

// The same as worker/function_registry.cc's (DeserializeInto's error
// messages name the expected type with it).
std::string Demangle(const char* mangled) {
  int status = 0;
  char* out = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  if (status != 0 || out == nullptr) return mangled;
  std::string result(out);
  std::free(out);
  return result;
}

}  // namespace lumen::internal
