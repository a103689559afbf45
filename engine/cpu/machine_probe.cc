#include "engine/cpu/machine_probe.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "core/aligned_buffer.h"

namespace moe::engine::cpu {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double ReadPassPortable(const char* data, size_t bytes) {
  const uint64_t* p = reinterpret_cast<const uint64_t*>(data);
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (size_t i = 0; i + 4 <= bytes / 8; i += 4) {
    s0 += p[i];
    s1 += p[i + 1];
    s2 += p[i + 2];
    s3 += p[i + 3];
  }
  return static_cast<double>(s0 + s1 + s2 + s3);
}

double ScalarChains(long iterations) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  volatile float bv = 1e-9f;
  const float b = bv;
  for (long it = 0; it < iterations; ++it) {
    for (int i = 0; i < 8; ++i) acc[i] = acc[i] * 1.0f + b;
  }
  volatile float sink = acc[0] + acc[7];
  (void)sink;
  return static_cast<double>(iterations) * 8 * 2;
}

// Runs fn(thread) on `threads` threads at once; returns the wall time.
template <typename Fn>
double TimeThreads(int threads, Fn&& fn) {
  std::vector<std::thread> pool;
  const double start = Now();
  for (int t = 1; t < threads; ++t) pool.emplace_back([&fn, t] { fn(t); });
  fn(0);
  for (std::thread& th : pool) th.join();
  return Now() - start;
}

}  // namespace

double MeasureReadBandwidth(size_t bytes, int threads, int reps) {
  threads = std::max(1, threads);
  bytes = std::max<size_t>(bytes / (256 * threads) * 256 * threads, 256 * threads);
  // Huge pages as the packed weights get (cpu_backend.cc), so that the probe measures DRAM and
  // not TLB misses.
  AlignedBuffer buffer(bytes + (2u << 20));
  constexpr uintptr_t kHuge = 2u << 20;
  const uintptr_t aligned = (reinterpret_cast<uintptr_t>(buffer.data()) + kHuge - 1) & ~(kHuge - 1);
  madvise(reinterpret_cast<void*>(aligned), bytes / kHuge * kHuge, MADV_HUGEPAGE);
  char* data = reinterpret_cast<char*>(aligned);
  std::memset(data, 1, bytes);
  const bool avx512 = CpuSupports(CpuIsa::kAvx512Bf16);
  const size_t slice = bytes / threads;
  double best = 0;
  for (int r = 0; r <= reps; ++r) {
    const double seconds = TimeThreads(threads, [&](int t) {
      const char* p = data + t * slice;
      volatile double sink =
          avx512 ? internal::ReadPassAvx512(p, slice) : ReadPassPortable(p, slice);
      (void)sink;
    });
    if (r > 0) best = std::max(best, static_cast<double>(bytes) / seconds);
  }
  return best;
}

double MeasurePeakFlops(CpuIsa isa, int threads, double seconds) {
  threads = std::max(1, threads);
  if (isa == CpuIsa::kAuto) isa = DetectCpuIsa();
  auto run = [&](long iterations) {
    std::vector<double> flops(threads, 0);
    const double elapsed = TimeThreads(threads, [&](int t) {
      switch (isa) {
        case CpuIsa::kAvx512Bf16:
          flops[t] = internal::DpChainsAvx512(iterations);
          break;
        case CpuIsa::kAvx2:
          flops[t] = internal::FmaChainsAvx2(iterations);
          break;
        default:
          flops[t] = ScalarChains(iterations);
          break;
      }
    });
    double total = 0;
    for (double f : flops) total += f;
    return std::make_pair(total, elapsed);
  };
  // Fixed work per pass (about seconds / 3 at 2 instructions per cycle and 4 GHz); the best of
  // three passes (a pass slowed by another process only lowers its own figure).
  const long iterations = std::max<long>(100000, static_cast<long>(seconds / 3 * 4e9 * 2 / 16));
  double best = 0;
  for (int r = 0; r < 3; ++r) {
    auto [f, t] = run(iterations);
    best = std::max(best, f / t);
  }
  return best;
}

}  // namespace moe::engine::cpu
