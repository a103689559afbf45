// The ISA-specific inner loops of machine_probe.cc.
#include <immintrin.h>

#include "engine/cpu/machine_probe.h"

namespace moe::engine::cpu::internal {

double ReadPassAvx512(const char* data, size_t bytes) {
  // 8 independent sums and a software prefetch 4 KiB ahead: the best streaming read we know
  // how to write, so that kernels are measured against a real upper bound.
  __m512i s[8];
  for (int k = 0; k < 8; ++k) s[k] = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 512 <= bytes; i += 512) {
    _mm_prefetch(data + i + 4096, _MM_HINT_T0);
    _mm_prefetch(data + i + 4096 + 64, _MM_HINT_T0);
    _mm_prefetch(data + i + 4096 + 128, _MM_HINT_T0);
    _mm_prefetch(data + i + 4096 + 192, _MM_HINT_T0);
    _mm_prefetch(data + i + 4096 + 256, _MM_HINT_T0);
    _mm_prefetch(data + i + 4096 + 320, _MM_HINT_T0);
    _mm_prefetch(data + i + 4096 + 384, _MM_HINT_T0);
    _mm_prefetch(data + i + 4096 + 448, _MM_HINT_T0);
    for (int k = 0; k < 8; ++k) {
      s[k] = _mm512_add_epi32(s[k], _mm512_load_si512(data + i + 64 * k));
    }
  }
  __m512i t = s[0];
  for (int k = 1; k < 8; ++k) t = _mm512_add_epi32(t, s[k]);
  return static_cast<double>(_mm512_reduce_add_epi32(t));
}

double DpChainsAvx512(long iterations) {
  constexpr int kChains = 16;
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_setzero_ps();
  __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80);
  const __m512bh b = (__m512bh)_mm512_set1_epi32(0x00010001);
  for (long it = 0; it < iterations; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
    __asm__ volatile("" : "+v"(a));
  }
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  volatile float sink = _mm512_reduce_add_ps(s);
  (void)sink;
  return static_cast<double>(iterations) * kChains * 64;
}

double FmaChainsAvx2(long iterations) {
  constexpr int kChains = 12;
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_setzero_ps();
  __m256 a = _mm256_set1_ps(1.0f);
  const __m256 b = _mm256_set1_ps(1e-9f);
  for (long it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(a, b, acc[i]);
    __asm__ volatile("" : "+v"(a));
  }
  __m256 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm256_add_ps(s, acc[i]);
  alignas(32) float out[8];
  _mm256_store_ps(out, s);
  volatile float sink = out[0];
  (void)sink;
  return static_cast<double>(iterations) * kChains * 16;
}

}  // namespace moe::engine::cpu::internal
