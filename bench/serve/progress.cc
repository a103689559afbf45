#include "bench/serve/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace moe::bench {

bool ProgressBar::StderrIsTerminal() { return isatty(STDERR_FILENO) == 1; }

ProgressBar::ProgressBar(bool enabled, std::string label, int64_t total, double duration_s)
    : enabled_(enabled && StderrIsTerminal()),
      label_(std::move(label)),
      total_(total),
      duration_s_(duration_s) {}

ProgressBar::~ProgressBar() {
  if (enabled_ && drawn_) std::fputc('\n', stderr);
}

void ProgressBar::Draw(double now_s, int64_t done, int64_t in_flight, int64_t failed) {
  next_draw_ = now_s + 0.1;
  drawn_ = true;
  constexpr int kWidth = 30;
  double frac = 0;
  if (total_ > 0) frac = static_cast<double>(done) / static_cast<double>(total_);
  if (duration_s_ > 0) frac = std::max(frac, now_s / duration_s_);
  frac = std::clamp(frac, 0.0, 1.0);
  const int filled = static_cast<int>(frac * kWidth);
  char bar[kWidth + 1];
  for (int i = 0; i < kWidth; ++i) bar[i] = i < filled ? '#' : '.';
  bar[kWidth] = '\0';
  if (total_ > 0) {
    std::fprintf(stderr, "\r%s [%s] %3d%% %lld/%lld req  in flight %lld  failed %lld  %.1f s\x1b[K",
                 label_.c_str(), bar, static_cast<int>(frac * 100), static_cast<long long>(done),
                 static_cast<long long>(total_), static_cast<long long>(in_flight),
                 static_cast<long long>(failed), now_s);
  } else {
    std::fprintf(stderr, "\r%s [%s] %lld req  in flight %lld  failed %lld  %.1f s\x1b[K",
                 label_.c_str(), bar, static_cast<long long>(done),
                 static_cast<long long>(in_flight), static_cast<long long>(failed), now_s);
  }
  std::fflush(stderr);
}

void ProgressBar::Finish(double now_s, int64_t done, int64_t in_flight, int64_t failed) {
  if (!enabled_) return;
  Draw(now_s, done, in_flight, failed);
  std::fputc('\n', stderr);
  drawn_ = false;
}

}  // namespace moe::bench
