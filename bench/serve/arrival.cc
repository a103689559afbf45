#include "bench/serve/arrival.h"

#include <cmath>
#include <random>

namespace moe::bench {

Status ArrivalOptions::Validate() const {
  if (!(request_rate > 0)) return InvalidArgument("--request-rate must be > 0 (or inf)");
  if (!(burstiness > 0) || !std::isfinite(burstiness)) {
    return InvalidArgument("--burstiness must be a finite value > 0, got ", burstiness);
  }
  if (has_ramp_up()) {
    if (ramp_up_strategy != "linear" && ramp_up_strategy != "exponential") {
      return InvalidArgument("--ramp-up-strategy must be linear or exponential, got '",
                             ramp_up_strategy, "'");
    }
    if (!(ramp_up_start_rps > 0) || !(ramp_up_end_rps > 0) || !std::isfinite(ramp_up_start_rps) ||
        !std::isfinite(ramp_up_end_rps)) {
      return InvalidArgument(
          "--ramp-up-strategy needs finite --ramp-up-start-rps and --ramp-up-end-rps > 0");
    }
  }
  return OkStatus();
}

double CurrentRequestRate(const ArrivalOptions& o, int64_t index, int64_t total) {
  if (!o.has_ramp_up()) return o.request_rate;
  const double progress =
      static_cast<double>(index) / static_cast<double>(std::max<int64_t>(total - 1, 1));
  if (o.ramp_up_strategy == "linear") {
    return o.ramp_up_start_rps + (o.ramp_up_end_rps - o.ramp_up_start_rps) * progress;
  }
  return o.ramp_up_start_rps * std::pow(o.ramp_up_end_rps / o.ramp_up_start_rps, progress);
}

std::vector<double> SendTimes(const ArrivalOptions& o, int64_t n) {
  std::vector<double> t(static_cast<size_t>(std::max<int64_t>(n, 0)), 0.0);
  if (n <= 0 || !o.timed()) return t;
  std::mt19937_64 rng(o.seed);
  for (int64_t i = 0; i < n; ++i) {
    const double rate = CurrentRequestRate(o, i, n);
    double gap = 0;
    if (std::isfinite(rate)) {
      std::gamma_distribution<double> gamma(o.burstiness, 1.0 / (rate * o.burstiness));
      gap = gamma(rng);
    }
    t[i] = (i > 0 ? t[i - 1] : 0.0) + gap;
  }
  // vLLM: without a ramp-up, rescale so the run's target length N / rate holds exactly (the raw
  // sum of gamma gaps misses it by a few percent, which would make throughput seed-dependent).
  if (!o.has_ramp_up() && t.back() > 0) {
    const double factor = (static_cast<double>(n) / o.request_rate) / t.back();
    for (double& v : t) v *= factor;
  }
  return t;
}

}  // namespace moe::bench
