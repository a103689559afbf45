#include "core/logging.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

namespace moe {
namespace {
std::atomic<LogLevel> g_level{LogLevel::kInfo};

const char* LevelLetter(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "D";
    case LogLevel::kInfo:
      return "I";
    case LogLevel::kWarning:
      return "W";
    case LogLevel::kError:
      return "E";
    default:
      return "?";
  }
}
}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(level, std::memory_order_relaxed); }
LogLevel GetLogLevel() { return g_level.load(std::memory_order_relaxed); }

bool ParseLogLevel(const char* text, LogLevel* level) {
  struct Entry {
    const char* name;
    LogLevel level;
  };
  static constexpr Entry kEntries[] = {{"debug", LogLevel::kDebug},
                                       {"info", LogLevel::kInfo},
                                       {"warning", LogLevel::kWarning},
                                       {"error", LogLevel::kError},
                                       {"off", LogLevel::kOff}};
  for (const Entry& e : kEntries) {
    if (std::strcmp(text, e.name) == 0) {
      *level = e.level;
      return true;
    }
  }
  return false;
}

namespace internal {

LogMessage::LogMessage(LogLevel level, const char* file, int line) : level_(level) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t secs = std::chrono::system_clock::to_time_t(now);
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() %
      1000000;
  std::tm tm_utc;
  gmtime_r(&secs, &tm_utc);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm_utc);
  const char* base = std::strrchr(file, '/');
  stream_ << LevelLetter(level) << " " << stamp << "." << micros / 1000 << " "
          << (base ? base + 1 : file) << ":" << line << "] ";
}

LogMessage::~LogMessage() {
  stream_ << "\n";
  const std::string text = stream_.str();
  std::fwrite(text.data(), 1, text.size(), stderr);
  (void)level_;
}

}  // namespace internal
}  // namespace moe
