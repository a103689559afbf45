// Clocks. Durations inside the process come from the monotonic clock; timestamps that leave the
// process (logs, API responses) come from the wall clock, as nanoseconds since the Unix epoch.
#pragma once

#include <cstdint>

namespace moe {

int64_t MonotonicNanos();
int64_t WallNanos();

// Measures elapsed monotonic time since construction or the last Reset().
class Stopwatch {
 public:
  Stopwatch() : start_(MonotonicNanos()) {}
  void Reset() { start_ = MonotonicNanos(); }
  int64_t ElapsedNanos() const { return MonotonicNanos() - start_; }
  double ElapsedSeconds() const { return static_cast<double>(ElapsedNanos()) * 1e-9; }

 private:
  int64_t start_;
};

}  // namespace moe
