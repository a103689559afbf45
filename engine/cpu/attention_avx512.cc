// Attention tiles for AVX-512 (16 lanes); the kernel itself is attention_simd_inl.h.
#include <immintrin.h>

#include <climits>

#include "engine/cpu/simd_avx512.h"

namespace moe::engine::cpu::avx512 {
namespace {

struct V512 {
  using T = __m512;
  static constexpr int kLanes = 16;
  static T Zero() { return _mm512_setzero_ps(); }
  static T Set1(float f) { return _mm512_set1_ps(f); }
  static T LoadF32(const float* p, int64_t n) { return avx512::LoadF32(p, TailMask16(n)); }
  static T LoadBf16(const uint16_t* p, int64_t n) { return avx512::LoadBf16(p, TailMask16(n)); }
  static void StoreF32(float* p, T v, int64_t n) { avx512::StoreF32(p, v, TailMask16(n)); }
  static void StoreBf16(uint16_t* p, T v, int64_t n) { avx512::StoreBf16(p, v, TailMask16(n)); }
  static T Fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T Add(T a, T b) { return _mm512_add_ps(a, b); }
  static T Sub(T a, T b) { return _mm512_sub_ps(a, b); }
  static T Max(T a, T b) { return _mm512_max_ps(a, b); }
  static T Div(T a, T b) { return _mm512_div_ps(a, b); }
  static float ReduceAdd(T v) { return _mm512_reduce_add_ps(v); }
  static float ReduceMax(T v) { return _mm512_reduce_max_ps(v); }
  static T Exp(T v) { return avx512::Exp(v); }
  // Lanes c + i with f <= c + i <= l.
  static __mmask16 RangeMask(int c, int f, int l) {
    const __m512i pos = _mm512_add_epi32(_mm512_set1_epi32(c),
                                         _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                                                           12, 13, 14, 15));
    return _mm512_cmpge_epi32_mask(pos, _mm512_set1_epi32(f)) &
           _mm512_cmple_epi32_mask(pos, _mm512_set1_epi32(l));
  }
  static T LoadMasked(const float* p, int c, int f, int l, float fill) {
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), RangeMask(c, f, l), p);
  }
  static T MaskRange(T v, int c, int f, int l) {
    return _mm512_maskz_mov_ps(RangeMask(c, f, l), v);
  }
};

}  // namespace
}  // namespace moe::engine::cpu::avx512

#define MOE_SIMD_NS avx512
#include "engine/cpu/attention_simd_inl.h"
#undef MOE_SIMD_NS

namespace moe::engine::cpu::internal {
void AttentionAvx512(const AttentionArgs& args, const AttentionTile& tile,
                     const AttentionScratch& scratch) {
  avx512::AttentionTileKernel<avx512::V512>(args, tile, scratch);
}
}  // namespace moe::engine::cpu::internal
