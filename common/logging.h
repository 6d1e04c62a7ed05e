// Structured logging for lumen processes, on spdlog. Lines are logfmt-style:
//   2026-11-23 14:54:00.123 I gcs 4242 gcs_server.cc:42] node registered node=3fa1 addr=...
// Put the event first and key=value pairs after it. Thread-safe.
#pragma once

#include <string>

#include "spdlog/spdlog.h"

namespace lumen::logging {

enum class Level { kDebug, kInfo, kWarning, kError, kOff };

// Reads "debug", "info", "warning", "error", "off"; returns kInfo otherwise.
Level ParseLevel(const std::string& name);

// Configures the process-wide logger once at start: `component` names the
// process ("gcs", "node", "worker", "driver", "cli"); an empty `file` logs to
// stderr. The level comes from `level`, overridden by $LUMEN_LOG_LEVEL.
void Init(const std::string& component, const std::string& file, Level level);

// Flushes buffered lines (call before _exit).
void Flush();

// lumen's own logger (never the program's default spdlog logger, since a
// driver is the user's program). Until Init() it logs warnings to stderr.
spdlog::logger* Logger();

}  // namespace lumen::logging

#define LUMEN_LOG_DEBUG(...) SPDLOG_LOGGER_DEBUG(::lumen::logging::Logger(), __VA_ARGS__)
#define LUMEN_LOG_INFO(...) SPDLOG_LOGGER_INFO(::lumen::logging::Logger(), __VA_ARGS__)
#define LUMEN_LOG_WARN(...) SPDLOG_LOGGER_WARN(::lumen::logging::Logger(), __VA_ARGS__)
#define LUMEN_LOG_ERROR(...) SPDLOG_LOGGER_ERROR(::lumen::logging::Logger(), __VA_ARGS__)
// For "cannot happen": logs and aborts.
#define LUMEN_CHECK(cond)                         \
  do {                                            \
    if (!(cond)) {                                \
      SPDLOG_CRITICAL("check failed: {}", #cond); \
      ::lumen::logging::Flush();                  \
      std::abort();                               \
    }                                             \
  } while (0)
