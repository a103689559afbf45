// A one-line progress bar on stderr while a run is going: bar, finished/total requests, requests
// in flight, failures and elapsed time. Off unless enabled and stderr is a terminal. Updates are
// throttled (10 per second), so the driver can call Update on every event.
#pragma once

#include <cstdint>
#include <string>

namespace moe::bench {

class ProgressBar {
 public:
  // total <= 0: unknown (a duration-bound run): no bar, counts only.
  ProgressBar(bool enabled, std::string label, int64_t total, double duration_s);
  ~ProgressBar();

  // Cheap unless a redraw is due (`now_s` is the run's clock).
  void Update(double now_s, int64_t done, int64_t in_flight, int64_t failed) {
    if (enabled_ && now_s >= next_draw_) Draw(now_s, done, in_flight, failed);
  }
  // Draws the final state and ends the line.
  void Finish(double now_s, int64_t done, int64_t in_flight, int64_t failed);

  static bool StderrIsTerminal();

 private:
  void Draw(double now_s, int64_t done, int64_t in_flight, int64_t failed);

  bool enabled_;
  std::string label_;
  int64_t total_;
  double duration_s_;
  double next_draw_ = 0;
  bool drawn_ = false;
};

}  // namespace moe::bench
