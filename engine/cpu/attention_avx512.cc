// Attention tiles for AVX-512 (16 lanes); the kernel itself is attention_simd_inl.h.
#include <immintrin.h>

#include <climits>

#include "core/bf16.h"

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
  static T LoadF32Full(const float* p) { return _mm512_loadu_ps(p); }
  static T LoadBf16Full(const uint16_t* p) {
    return avx512::WidenBf16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static void StoreF32(float* p, T v, int64_t n) { avx512::StoreF32(p, v, TailMask16(n)); }
  static void StoreBf16(uint16_t* p, T v, int64_t n) { avx512::StoreBf16(p, v, TailMask16(n)); }
  static T Fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T Add(T a, T b) { return _mm512_add_ps(a, b); }
  static T Sub(T a, T b) { return _mm512_sub_ps(a, b); }
  static T Max(T a, T b) { return _mm512_max_ps(a, b); }
  static T Div(T a, T b) { return _mm512_div_ps(a, b); }
  static T Exp(T v) { return avx512::Exp(v); }
  using M = __mmask16;
  static T Load(const float* p) { return _mm512_load_ps(p); }
  static void Store(float* p, T v) { _mm512_store_ps(p, v); }
  static T Mul(T a, T b) { return _mm512_mul_ps(a, b); }
  static M InRange(const int32_t* first, const int32_t* last, int j) {
    const __m512i jv = _mm512_set1_epi32(j);
    return _mm512_cmple_epi32_mask(_mm512_loadu_si512(first), jv) &
           _mm512_cmple_epi32_mask(jv, _mm512_loadu_si512(last));
  }
  static T Select(M m, T if_false, T if_true) { return _mm512_mask_blend_ps(m, if_false, if_true); }
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
