// RequestLog: the JSON Lines sink of request_finished / engine_stats events. Writers append whole
// lines to an in-memory buffer (a short lock, no I/O); a background thread hands the buffer to
// the kernel at least every flush_interval_ms, so a crash of the process loses at most that much
// (well under a second). Size-based rotation: when the next lines would take the file past
// max_bytes, FILE becomes FILE.1 (FILE.1 -> FILE.2, ... up to max_files, the oldest dropped) and a
// fresh FILE is started. Lines are never split across files. Path "-" writes to stdout (no
// rotation).
//
// Threads: Write is thread-safe and non-blocking (the buffer has a cap: past it lines are dropped
// and counted rather than stalling a gRPC or engine thread).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "core/status.h"

namespace moe::serving {

struct RequestLogOptions {
  std::string path;                     // "-" = stdout
  int64_t max_bytes = 100LL << 20;      // rotate past this size (0 = never)
  int max_files = 5;                    // rotated files kept besides the live one
  int flush_interval_ms = 200;          // the most a crash can lose
  int64_t max_buffer_bytes = 64 << 20;  // pending bytes beyond which lines are dropped

  Status Validate() const;
};

class RequestLog {
 public:
  // Opens (appends to) the file and starts the flush thread. Errors: the file cannot be opened.
  static StatusOr<std::unique_ptr<RequestLog>> Open(const RequestLogOptions& options);
  ~RequestLog();  // flushes everything written so far

  // Appends one line (`line` must not contain a newline; one is added).
  void Write(std::string_view line);
  // Hands everything written so far to the kernel (tests, shutdown).
  void Flush();

  int64_t lines_dropped() const;
  const RequestLogOptions& options() const { return options_; }

 private:
  explicit RequestLog(const RequestLogOptions& options) : options_(options) {}
  void Run();
  // Writes `data` (whole lines) to the file, rotating as needed. Holds io_mu_.
  void WriteOut(const std::string& data);
  Status Reopen(bool truncate);
  void Rotate();

  RequestLogOptions options_;
  mutable std::mutex mu_;  // buffer_, stop_, dropped_
  std::condition_variable cv_;
  std::string buffer_;
  bool stop_ = false;
  int64_t dropped_ = 0;
  std::mutex io_mu_;   // fd_, file_bytes_, spare_
  std::string spare_;  // the buffer being written out
  int fd_ = -1;
  bool owns_fd_ = false;
  int64_t file_bytes_ = 0;
  std::thread thread_;
};

}  // namespace moe::serving
