// Attention tiles for AVX2 (8 lanes); the kernel itself is attention_simd_inl.h.
#include <immintrin.h>

#include <climits>

#include "engine/cpu/simd_avx2.h"

namespace moe::engine::cpu::avx2 {
namespace {

struct V256 {
  using T = __m256;
  static constexpr int kLanes = 8;
  static T Zero() { return _mm256_setzero_ps(); }
  static T Set1(float f) { return _mm256_set1_ps(f); }
  static T LoadF32(const float* p, int64_t n) { return avx2::LoadF32(p, n); }
  static T LoadBf16(const uint16_t* p, int64_t n) { return avx2::LoadBf16(p, n); }
  static void StoreF32(float* p, T v, int64_t n) { avx2::StoreF32(p, v, n); }
  static void StoreBf16(uint16_t* p, T v, int64_t n) { avx2::StoreBf16(p, v, n); }
  static T Fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T Add(T a, T b) { return _mm256_add_ps(a, b); }
  static T Sub(T a, T b) { return _mm256_sub_ps(a, b); }
  static T Max(T a, T b) { return _mm256_max_ps(a, b); }
  static T Div(T a, T b) { return _mm256_div_ps(a, b); }
  static float ReduceAdd(T v) {
    // Fixed tree: (0+4, 1+5, 2+6, 3+7), then pairs, then the last two.
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float ReduceMax(T v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static T Exp(T v) { return avx2::Exp(v); }
  static __m256 RangeMask(int c, int f, int l) {
    const __m256i pos =
        _mm256_add_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256i lo = _mm256_cmpgt_epi32(_mm256_set1_epi32(f), pos);  // pos < f
    const __m256i hi = _mm256_cmpgt_epi32(pos, _mm256_set1_epi32(l));  // pos > l
    return _mm256_castsi256_ps(_mm256_andnot_si256(_mm256_or_si256(lo, hi),
                                                   _mm256_set1_epi32(-1)));
  }
  static T LoadMasked(const float* p, int c, int f, int l, float fill) {
    const __m256 m = RangeMask(c, f, l);
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, _mm256_castps_si256(m)),
                            m);
  }
  static T MaskRange(T v, int c, int f, int l) { return _mm256_and_ps(v, RangeMask(c, f, l)); }
};

}  // namespace
}  // namespace moe::engine::cpu::avx2

#define MOE_SIMD_NS avx2
#include "engine/cpu/attention_simd_inl.h"
#undef MOE_SIMD_NS

namespace moe::engine::cpu::internal {
void AttentionAvx2(const AttentionArgs& args, const AttentionTile& tile,
                   const AttentionScratch& scratch) {
  avx2::AttentionTileKernel<avx2::V256>(args, tile, scratch);
}
}  // namespace moe::engine::cpu::internal
