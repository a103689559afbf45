// CUDA's device-side language for the emulator: execution-space keywords, the built-in index
// variables, barriers, warp intrinsics, atomics and the math intrinsics moeserve's kernels use,
// mapped onto grid.h. Fibers never preempt each other, so atomics are plain read-modify-writes.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cuda/emu/grid.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
// Static shared memory: one instance, reused by the blocks, which run one at a time.
#define __shared__ static

#define threadIdx (::moe::cuda::emu::ThreadIdx())
#define blockIdx (::moe::cuda::emu::BlockIdx())
#define blockDim (::moe::cuda::emu::BlockDim())
#define gridDim (::moe::cuda::emu::GridDim())

inline constexpr int warpSize = 32;

// CUDA declares these classification functions in the global namespace.
using std::isfinite;
using std::isinf;
using std::isnan;
using std::signbit;

inline void __syncthreads() { moe::cuda::emu::SyncThreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { moe::cuda::emu::SyncWarp(mask); }
inline void __threadfence() {}
inline void __threadfence_block() {}

namespace moe::cuda::emu::detail {
template <typename T>
uint64_t ToBits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffle of a <= 8-byte value");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  return bits;
}
template <typename T>
T FromBits(uint64_t bits) {
  T v;
  std::memcpy(&v, &bits, sizeof(T));
  return v;
}
template <typename T>
T Shfl(unsigned mask, T v, int arg, ShuffleMode mode, int width) {
  return FromBits<T>(Shuffle(mask, ToBits(v), arg, mode, width));
}
}  // namespace moe::cuda::emu::detail

template <typename T>
T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
  return moe::cuda::emu::detail::Shfl(mask, v, src_lane, moe::cuda::emu::ShuffleMode::kIndex,
                                      width);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return moe::cuda::emu::detail::Shfl(mask, v, static_cast<int>(delta),
                                      moe::cuda::emu::ShuffleMode::kUp, width);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return moe::cuda::emu::detail::Shfl(mask, v, static_cast<int>(delta),
                                      moe::cuda::emu::ShuffleMode::kDown, width);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return moe::cuda::emu::detail::Shfl(mask, v, lane_mask, moe::cuda::emu::ShuffleMode::kXor, width);
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  return moe::cuda::emu::Ballot(mask, predicate != 0);
}
inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }
inline int __all_sync(unsigned mask, int predicate) {
  return __ballot_sync(mask, predicate) == mask;
}
template <typename T>
unsigned __match_any_sync(unsigned mask, T v) {
  return moe::cuda::emu::MatchAny(mask, moe::cuda::emu::detail::ToBits(v));
}
inline unsigned __activemask() { return 0xffffffffu; }

inline size_t __cvta_generic_to_shared(const void* p) { return moe::cuda::emu::SharedAddress(p); }
template <typename T>
T __ldg(const T* p) {
  return *p;
}

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long x) {
  return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x));
}

inline float __uint_as_float(unsigned u) { return moe::cuda::emu::detail::FromBits<float>(u); }
inline unsigned __float_as_uint(float f) {
  return static_cast<unsigned>(moe::cuda::emu::detail::ToBits(f));
}
inline float __int_as_float(int i) { return __uint_as_float(static_cast<unsigned>(i)); }
inline int __float_as_int(float f) { return static_cast<int>(__float_as_uint(f)); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }

// CUDA's global min / max overloads.
#define MOE_EMU_MIN_MAX(T)                         \
  inline T min(T a, T b) { return b < a ? b : a; } \
  inline T max(T a, T b) { return a < b ? b : a; }
MOE_EMU_MIN_MAX(int)
MOE_EMU_MIN_MAX(unsigned)
MOE_EMU_MIN_MAX(long)
MOE_EMU_MIN_MAX(unsigned long)
MOE_EMU_MIN_MAX(long long)
MOE_EMU_MIN_MAX(unsigned long long)
#undef MOE_EMU_MIN_MAX
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }

template <typename T>
T atomicAdd(T* p, T v) {
  const T old = *p;
  *p = old + v;
  return old;
}
template <typename T>
T atomicMax(T* p, T v) {
  const T old = *p;
  if (v > old) *p = v;
  return old;
}
template <typename T>
T atomicMin(T* p, T v) {
  const T old = *p;
  if (v < old) *p = v;
  return old;
}
template <typename T>
T atomicExch(T* p, T v) {
  const T old = *p;
  *p = v;
  return old;
}
template <typename T>
T atomicCAS(T* p, T compare, T v) {
  const T old = *p;
  if (old == compare) *p = v;
  return old;
}
template <typename T>
T atomicOr(T* p, T v) {
  const T old = *p;
  *p = old | v;
  return old;
}
