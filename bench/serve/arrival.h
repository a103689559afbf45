// The arrival process of an open-loop run, as vLLM's `bench serve`: inter-arrival gaps drawn from
// Gamma(shape = burstiness, scale = 1 / (rate * burstiness)) (burstiness 1 = Poisson; the gaps'
// coefficient of variation is 1 / sqrt(burstiness)), accumulated into send times and rescaled so
// the last send lands exactly at N / rate. With a ramp-up the rate moves from the start to the end
// rate over the requests (linear or exponential) and no rescaling is done. rate = inf sends
// everything at t = 0.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/status.h"

namespace moe::bench {

struct ArrivalOptions {
  double request_rate = std::numeric_limits<double>::infinity();  // requests/s; inf = all at once
  double burstiness = 1.0;
  std::string ramp_up_strategy;  // "" | "linear" | "exponential"
  double ramp_up_start_rps = 0;
  double ramp_up_end_rps = 0;
  uint64_t seed = 0;

  bool has_ramp_up() const { return !ramp_up_strategy.empty(); }
  // Finite send times: a finite rate or a ramp-up.
  bool timed() const { return has_ramp_up() || std::isfinite(request_rate); }
  Status Validate() const;
};

// The rate in force for request `index` of `total` (vLLM's _get_current_request_rate).
double CurrentRequestRate(const ArrivalOptions& options, int64_t index, int64_t total);

// Send times in seconds from the start of the run, non-decreasing, one per request.
std::vector<double> SendTimes(const ArrivalOptions& options, int64_t num_requests);

}  // namespace moe::bench
