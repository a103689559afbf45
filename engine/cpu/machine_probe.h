// Probes of this machine's limits, measured in the same process as the benchmark they scale:
// a STREAM-like read bandwidth probe and a peak arithmetic probe (vdpbf16ps on the avx512bf16
// path, F32 FMA otherwise). Benchmarks report their GB/s and GFLOP/s as ratios of these, which
// keeps the figures meaningful on a noisy shared 2-vCPU box.
#pragma once

#include <cstddef>

#include "engine/cpu/cpu_features.h"

namespace moe::engine::cpu {

// Bytes/s of reading a `bytes` buffer (split across `threads` threads), best of `reps` passes
// after one warm-up pass.
double MeasureReadBandwidth(size_t bytes, int threads, int reps);

// FLOP/s of independent multiply-add chains on `threads` threads for about `seconds`: vdpbf16ps
// (64 FLOP per zmm instruction) for kAvx512Bf16, F32 FMA for kAvx2, and scalar F32 otherwise.
double MeasurePeakFlops(CpuIsa isa, int threads, double seconds);

namespace internal {
double ReadPassAvx512(const char* data, size_t bytes);
double DpChainsAvx512(long iterations);  // returns FLOPs done
double FmaChainsAvx2(long iterations);
}  // namespace internal

}  // namespace moe::engine::cpu
