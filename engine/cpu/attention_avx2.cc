// Attention tiles for AVX2 (8 lanes); the kernel itself is attention_simd_inl.h.
#include <immintrin.h>

#include <climits>

#include "core/bf16.h"

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
  static T LoadF32Full(const float* p) { return _mm256_loadu_ps(p); }
  static T LoadBf16Full(const uint16_t* p) {
    const __m128i bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
  }
  static void StoreF32(float* p, T v, int64_t n) { avx2::StoreF32(p, v, n); }
  static void StoreBf16(uint16_t* p, T v, int64_t n) { avx2::StoreBf16(p, v, n); }
  static T Fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T Add(T a, T b) { return _mm256_add_ps(a, b); }
  static T Sub(T a, T b) { return _mm256_sub_ps(a, b); }
  static T Max(T a, T b) { return _mm256_max_ps(a, b); }
  static T Div(T a, T b) { return _mm256_div_ps(a, b); }
  static T Exp(T v) { return avx2::Exp(v); }
  using M = __m256;
  static T Load(const float* p) { return _mm256_load_ps(p); }
  static void Store(float* p, T v) { _mm256_store_ps(p, v); }
  static T Mul(T a, T b) { return _mm256_mul_ps(a, b); }
  static M InRange(const int32_t* first, const int32_t* last, int j) {
    const __m256i jv = _mm256_set1_epi32(j);
    const __m256i before = _mm256_cmpgt_epi32(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(first)), jv);  // first > j
    const __m256i after = _mm256_cmpgt_epi32(
        jv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(last)));  // j > last
    return _mm256_castsi256_ps(
        _mm256_andnot_si256(_mm256_or_si256(before, after), _mm256_set1_epi32(-1)));
  }
  static T Select(M m, T if_false, T if_true) { return _mm256_blendv_ps(if_false, if_true, m); }
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
