#include "serving/request_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/logging.h"

namespace moe::serving {

Status RequestLogOptions::Validate() const {
  if (path.empty()) return InvalidArgument("--log-file: empty path");
  if (max_bytes < 0) return InvalidArgument("--log-max-bytes must be >= 0, got ", max_bytes);
  if (max_files < 1) return InvalidArgument("log max_files must be >= 1, got ", max_files);
  if (flush_interval_ms < 1 || flush_interval_ms > 1000) {
    return InvalidArgument("log flush_interval_ms must be in [1, 1000], got ", flush_interval_ms);
  }
  return OkStatus();
}

StatusOr<std::unique_ptr<RequestLog>> RequestLog::Open(const RequestLogOptions& options) {
  MOE_RETURN_IF_ERROR(options.Validate());
  auto log = std::unique_ptr<RequestLog>(new RequestLog(options));
  if (options.path == "-") {
    log->fd_ = STDOUT_FILENO;
  } else {
    MOE_RETURN_IF_ERROR(log->Reopen(/*truncate=*/false));
  }
  log->thread_ = std::thread([raw = log.get()] { raw->Run(); });
  return log;
}

RequestLog::~RequestLog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  Flush();
  std::lock_guard<std::mutex> lock(io_mu_);
  if (owns_fd_ && fd_ >= 0) ::close(fd_);
}

Status RequestLog::Reopen(bool truncate) {
  if (owns_fd_ && fd_ >= 0) ::close(fd_);
  fd_ = ::open(options_.path.c_str(),
               O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : O_APPEND), 0644);
  owns_fd_ = fd_ >= 0;
  if (fd_ < 0) {
    return Unavailable("--log-file: cannot open '", options_.path, "': ", std::strerror(errno));
  }
  struct stat st;
  file_bytes_ = ::fstat(fd_, &st) == 0 ? st.st_size : 0;
  return OkStatus();
}

void RequestLog::Rotate() {
  // FILE.(n-1) -> FILE.n, ..., FILE -> FILE.1; the oldest is overwritten.
  for (int i = options_.max_files - 1; i >= 1; --i) {
    const std::string from = absl::StrCat(options_.path, ".", i);
    const std::string to = absl::StrCat(options_.path, ".", i + 1);
    std::rename(from.c_str(), to.c_str());  // a missing one is fine
  }
  std::rename(options_.path.c_str(), absl::StrCat(options_.path, ".1").c_str());
  const Status status = Reopen(/*truncate=*/true);
  if (!status.ok()) MOE_LOG(ERROR) << status.message();
}

void RequestLog::Write(std::string_view line) {
  std::lock_guard<std::mutex> lock(mu_);
  if (static_cast<int64_t>(buffer_.size()) > options_.max_buffer_bytes) {
    ++dropped_;
    return;
  }
  buffer_.append(line.data(), line.size());
  buffer_.push_back('\n');
}

int64_t RequestLog::lines_dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

void RequestLog::Flush() {
  std::lock_guard<std::mutex> io_lock(io_mu_);
  {
    // Two buffers swap roles, so writers append into memory that is already allocated.
    std::lock_guard<std::mutex> lock(mu_);
    spare_.swap(buffer_);
  }
  WriteOut(spare_);
  spare_.clear();
}

void RequestLog::WriteOut(const std::string& data) {
  if (fd_ < 0 || data.empty()) return;
  const bool rotating = owns_fd_ && options_.max_bytes > 0;
  size_t at = 0;
  while (at < data.size()) {
    size_t end = data.size();
    if (rotating && file_bytes_ + static_cast<int64_t>(end - at) > options_.max_bytes) {
      // The longest run of whole lines that still fits; at least one line into an empty file.
      const int64_t room = options_.max_bytes - file_bytes_;
      size_t cut =
          room > 0 ? data.rfind('\n', at + static_cast<size_t>(room) - 1) : std::string::npos;
      if (cut == std::string::npos || cut < at) {
        if (file_bytes_ > 0) {
          Rotate();
          if (fd_ < 0) return;
          continue;
        }
        cut = data.find('\n', at);
      }
      end = cut + 1;
    }
    const char* p = data.data() + at;
    size_t left = end - at;
    while (left > 0) {
      const ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        MOE_LOG(ERROR) << "request log: write failed: " << std::strerror(errno);
        return;
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    file_bytes_ += static_cast<int64_t>(end - at);
    at = end;
  }
}

void RequestLog::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(options_.flush_interval_ms));
    if (buffer_.empty()) continue;
    lock.unlock();
    Flush();
    lock.lock();
  }
}

}  // namespace moe::serving
