// Status helpers used across lumen: absl::Status / absl::StatusOr with the
// canonical codes, and the early-return macros.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define LUMEN_CONCAT_INNER(a, b) a##b
#define LUMEN_CONCAT(a, b) LUMEN_CONCAT_INNER(a, b)

// Returns from the enclosing function when `expr` is not OK.
#define LUMEN_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::absl::Status lumen_status_ = (expr);         \
    if (!lumen_status_.ok()) return lumen_status_; \
  } while (0)

// `lhs` = value of the StatusOr `rexpr`, or returns its status.
#define LUMEN_ASSIGN_OR_RETURN(lhs, rexpr) \
  LUMEN_ASSIGN_OR_RETURN_IMPL(LUMEN_CONCAT(lumen_statusor_, __LINE__), lhs, rexpr)
#define LUMEN_ASSIGN_OR_RETURN_IMPL(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

namespace lumen {

// The status with `context + ": "` put in front of its message.
inline absl::Status Annotate(const absl::Status& s, std::string_view context) {
  if (s.ok()) return s;
  return absl::Status(s.code(), std::string(context) + ": " + std::string(s.message()));
}

}  // namespace lumen
