// Minimal leveled logging to stderr: `MOE_LOG(INFO) << "loaded " << n << " tensors";`.
// Thread-safe (one write per line). The level is set once by the composition root (app/).
#pragma once

#include <sstream>

namespace moe {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kOff = 4 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// Parses "debug", "info", "warning", "error", "off"; returns false for anything else.
bool ParseLogLevel(const char* text, LogLevel* level);

namespace internal {

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  template <typename T>
  LogMessage& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

struct LogVoidify {
  void operator&(const LogMessage&) {}
};

}  // namespace internal
}  // namespace moe

#define MOE_LOG_LEVEL_DEBUG ::moe::LogLevel::kDebug
#define MOE_LOG_LEVEL_INFO ::moe::LogLevel::kInfo
#define MOE_LOG_LEVEL_WARNING ::moe::LogLevel::kWarning
#define MOE_LOG_LEVEL_ERROR ::moe::LogLevel::kError

#define MOE_LOG(level)                           \
  (MOE_LOG_LEVEL_##level < ::moe::GetLogLevel()) \
      ? (void)0                                  \
      : ::moe::internal::LogVoidify() &          \
            ::moe::internal::LogMessage(MOE_LOG_LEVEL_##level, __FILE__, __LINE__)
