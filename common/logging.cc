// Process-wide logger setup (spdlog default logger).
#include "common/logging.h"

#include <cstdlib>
#include <mutex>
#include <vector>

#include "spdlog/sinks/basic_file_sink.h"
#include "spdlog/sinks/stdout_sinks.h"

namespace lumen::logging {

Level ParseLevel(const std::string& name) {
  if (name == "debug") return Level::kDebug;
  if (name == "warning" || name == "warn") return Level::kWarning;
  if (name == "error") return Level::kError;
  if (name == "off") return Level::kOff;
  return Level::kInfo;
}

static spdlog::level::level_enum ToSpd(Level level) {
  switch (level) {
    case Level::kDebug:
      return spdlog::level::debug;
    case Level::kInfo:
      return spdlog::level::info;
    case Level::kWarning:
      return spdlog::level::warn;
    case Level::kError:
      return spdlog::level::err;
    case Level::kOff:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

namespace {

std::shared_ptr<spdlog::logger> MakeStderrLogger(const std::string& name) {
  return std::make_shared<spdlog::logger>(name, std::make_shared<spdlog::sinks::stderr_sink_mt>());
}

std::mutex& LoggerMutex() {
  static std::mutex mu;
  return mu;
}

std::shared_ptr<spdlog::logger>& Current() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto l = MakeStderrLogger("lumen");
    l->set_level(spdlog::level::warn);
    l->set_pattern("%Y-%m-%d %H:%M:%S.%e %L %n %P %s:%#] %v");
    return l;
  }();
  return logger;
}

}  // namespace

spdlog::logger* Logger() { return Current().get(); }

void Init(const std::string& component, const std::string& file, Level level) {
  std::shared_ptr<spdlog::logger> logger;
  if (file.empty()) {
    logger = std::make_shared<spdlog::logger>(component,
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
  } else {
    try {
      logger = std::make_shared<spdlog::logger>(
          component, std::make_shared<spdlog::sinks::basic_file_sink_mt>(file));
    } catch (const spdlog::spdlog_ex&) {
      logger = std::make_shared<spdlog::logger>(component,
                                                std::make_shared<spdlog::sinks::stderr_sink_mt>());
    }
  }
  if (const char* env = std::getenv("LUMEN_LOG_LEVEL"); env && *env) level = ParseLevel(env);
  logger->set_level(ToSpd(level));
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %L %n %P %s:%#] %v");
  // Daemons log little: every line reaches the file at once.
  logger->flush_on(spdlog::level::info);
  std::lock_guard<std::mutex> lock(LoggerMutex());
  // A replaced logger stays alive: another thread may still hold its pointer.
  static std::vector<std::shared_ptr<spdlog::logger>> retired;
  retired.push_back(Current());
  Current() = logger;
}

void Flush() { Current()->flush(); }

}  // namespace lumen::logging
