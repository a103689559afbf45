// GEMM kernels for AVX2 + FMA (see gemm.h). Everything is widened to F32 and accumulated with
// one FMA per k. A register tile is MR rows x 32 columns (half a packed block, 4 ymm per row);
// the two halves of a block land in a small F32 tile and one epilogue finishes the block.
#include <immintrin.h>

#include <algorithm>

#include "core/bf16.h"
#include "engine/cpu/gemm.h"
#include "engine/cpu/kernel_util.h"
#include "engine/cpu/simd_avx2.h"

namespace moe::engine::cpu {
namespace avx2 {
namespace {

constexpr int kTileRows = 2;

inline float AElem(const float* a, int64_t i) { return a[i]; }
inline float AElem(const uint16_t* a, int64_t i) { return Bf16BitsToFloat(a[i]); }

// Columns [32 half, 32 half + 32) of a BF16-pair block into acc.
template <int MR, typename TA>
inline void HalfWidenBf16(const TA* a, int64_t lda, const char* block, int64_t k, int half,
                          __m256 (&acc)[MR][4]) {
  const __m256i hi = _mm256_set1_epi32(static_cast<int32_t>(0xffff0000u));
  const int64_t pairs = (k + 1) / 2;
  const char* w = block + half * 128;
  for (int64_t i = 0; i < pairs; ++i, w += 256) {
    const bool has_odd = 2 * i + 1 < k;
    __m256 a0[MR], a1[MR];
    for (int m = 0; m < MR; ++m) {
      a0[m] = _mm256_set1_ps(AElem(a + m * lda, 2 * i));
      a1[m] = has_odd ? _mm256_set1_ps(AElem(a + m * lda, 2 * i + 1)) : _mm256_setzero_ps();
    }
    for (int v = 0; v < 4; ++v) {
      const __m256i raw = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + 32 * v));
      const __m256 even = _mm256_castsi256_ps(_mm256_slli_epi32(raw, 16));
      const __m256 odd = _mm256_castsi256_ps(_mm256_and_si256(raw, hi));
      for (int m = 0; m < MR; ++m) {
        acc[m][v] = _mm256_fmadd_ps(a0[m], even, acc[m][v]);
        if (has_odd) acc[m][v] = _mm256_fmadd_ps(a1[m], odd, acc[m][v]);
      }
    }
  }
}

template <int MR, typename TA>
inline void HalfF32(const TA* a, int64_t lda, const char* block, int64_t k, int half,
                    __m256 (&acc)[MR][4]) {
  const float* w = reinterpret_cast<const float*>(block) + half * 32;
  for (int64_t i = 0; i < k; ++i, w += 64) {
    for (int m = 0; m < MR; ++m) {
      const __m256 av = _mm256_set1_ps(AElem(a + m * lda, i));
      for (int v = 0; v < 4; ++v)
        acc[m][v] = _mm256_fmadd_ps(av, _mm256_load_ps(w + 8 * v), acc[m][v]);
    }
  }
}

template <int MR, typename TA>
void TileBlock(const TA* a, int64_t lda, const PackedMatrix& w, int64_t b, float (*tile)[64]) {
  for (int half = 0; half < 2; ++half) {
    __m256 acc[MR][4];
    for (int m = 0; m < MR; ++m) {
      for (int v = 0; v < 4; ++v) acc[m][v] = _mm256_setzero_ps();
    }
    if (w.dtype == DType::kBF16) {
      HalfWidenBf16<MR>(a, lda, w.Block(b), w.cols, half, acc);
    } else {
      HalfF32<MR>(a, lda, w.Block(b), w.cols, half, acc);
    }
    for (int m = 0; m < MR; ++m) {
      for (int v = 0; v < 4; ++v) _mm256_storeu_ps(&tile[m][half * 32 + 8 * v], acc[m][v]);
    }
  }
}

inline void StoreRow(const TensorView& out, int64_t row, int64_t col, __m256 v, int64_t n) {
  if (out.dtype == DType::kF32) {
    StoreF32(ActRow<float>(out, row) + col, v, n);
  } else {
    StoreBf16(ActRow<uint16_t>(out, row) + col, v, n);
  }
}

void Epilogue(const GemmTask& t, int64_t m0, int rows, int64_t b, float (*tile)[64]) {
  if (t.epilogue == GemmEpilogue::kStore) {
    const int64_t col0 = b * kBlockCols;
    const int64_t valid = std::min<int64_t>(kBlockCols, t.w->rows - col0);
    for (int64_t c = 0; c < valid; c += 8) {
      const int64_t n = std::min<int64_t>(8, valid - c);
      const __m256 bias = t.bias != nullptr ? LoadF32(t.bias + col0 + c, n) : _mm256_setzero_ps();
      for (int m = 0; m < rows; ++m) {
        __m256 y = _mm256_loadu_ps(&tile[m][c]);
        if (t.bias != nullptr) y = _mm256_add_ps(y, bias);
        StoreRow(t.out, m0 + m, col0 + c, y, n);
      }
    }
  } else {
    const int64_t col0 = b * kHalfBlockCols;
    const int64_t valid = std::min<int64_t>(kHalfBlockCols, t.out.cols - col0);
    for (int64_t c = 0; c < valid; c += 8) {
      const int64_t n = std::min<int64_t>(8, valid - c);
      for (int m = 0; m < rows; ++m) {
        const __m256 h = _mm256_mul_ps(Silu(_mm256_loadu_ps(&tile[m][c])),
                                       _mm256_loadu_ps(&tile[m][kHalfBlockCols + c]));
        StoreRow(t.out, m0 + m, col0 + c, h, n);
      }
    }
  }
}

template <typename TA>
void GemmTyped(const GemmTask& t, const TA* a) {
  const int64_t m = t.a.rows;
  const int64_t lda = t.a.row_stride;
  alignas(32) float tile[kTileRows][64];
  for (int64_t b = t.block_begin; b < t.block_end; ++b) {
    for (int64_t m0 = 0; m0 < m; m0 += kTileRows) {
      const int rows = static_cast<int>(std::min<int64_t>(kTileRows, m - m0));
      if (rows == 2) {
        TileBlock<2>(a + m0 * lda, lda, *t.w, b, tile);
      } else {
        TileBlock<1>(a + m0 * lda, lda, *t.w, b, tile);
      }
      Epilogue(t, m0, rows, b, tile);
    }
  }
}

}  // namespace
}  // namespace avx2

namespace internal {
void GemmAvx2(const GemmTask& task) {
  if (task.a.dtype == DType::kBF16) {
    avx2::GemmTyped(task, ActRow<uint16_t>(task.a, 0));
  } else {
    avx2::GemmTyped(task, ActRow<float>(task.a, 0));
  }
}

void SiluMulAvx2(const TensorView& x, const TensorView& out, int64_t begin, int64_t end) {
  using namespace avx2;
  const int64_t f = out.cols;
  auto load = [&](int64_t t, int64_t c, int64_t n) {
    return x.dtype == DType::kF32 ? LoadF32(ActRow<float>(x, t) + c, n)
                                  : LoadBf16(ActRow<uint16_t>(x, t) + c, n);
  };
  for (int64_t t = begin; t < end; ++t) {
    for (int64_t c = 0; c < f; c += 8) {
      const int64_t n = std::min<int64_t>(8, f - c);
      const __m256 h = _mm256_mul_ps(Silu(load(t, c, n)), load(t, f + c, n));
      if (out.dtype == DType::kF32) {
        StoreF32(ActRow<float>(out, t) + c, h, n);
      } else {
        StoreBf16(ActRow<uint16_t>(out, t) + c, h, n);
      }
    }
  }
}
}  // namespace internal

}  // namespace moe::engine::cpu
