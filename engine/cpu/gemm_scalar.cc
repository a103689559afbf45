// Portable GEMM kernels (see gemm.h): the reference's arithmetic (acc = acc + a * w per k,
// separately rounded, std::exp in SiLU) over the packed layouts, so this path matches the naive
// reference bit for bit. Compiled without ISA flags; the compiler may vectorize across the 64
// columns of a block, which never changes an element's arithmetic.
#include <algorithm>
#include <cmath>

#include "core/bf16.h"
#include "engine/cpu/gemm.h"
#include "engine/cpu/kernel_util.h"

namespace moe::engine::cpu {
namespace scalar {
namespace {

inline float AElem(const float* a, int64_t i) { return a[i]; }
inline float AElem(const uint16_t* a, int64_t i) { return Bf16BitsToFloat(a[i]); }

template <typename TA>
void RowBlock(const TA* a, const PackedMatrix& w, int64_t b, float* acc) {
  for (int c = 0; c < kBlockCols; ++c) acc[c] = 0.f;
  const int64_t k = w.cols;
  if (w.dtype == DType::kBF16) {
    const uint32_t* p = reinterpret_cast<const uint32_t*>(w.Block(b));
    for (int64_t i = 0; i < k; i += 2, p += kBlockCols) {
      const float a0 = AElem(a, i);
      if (i + 1 < k) {
        const float a1 = AElem(a, i + 1);
        for (int c = 0; c < kBlockCols; ++c) {
          acc[c] = acc[c] + a0 * BitsToFloat(p[c] << 16);
          acc[c] = acc[c] + a1 * BitsToFloat(p[c] & 0xffff0000u);
        }
      } else {
        for (int c = 0; c < kBlockCols; ++c) acc[c] = acc[c] + a0 * BitsToFloat(p[c] << 16);
      }
    }
  } else {
    const float* p = reinterpret_cast<const float*>(w.Block(b));
    for (int64_t i = 0; i < k; ++i, p += kBlockCols) {
      const float ai = AElem(a, i);
      for (int c = 0; c < kBlockCols; ++c) acc[c] = acc[c] + ai * p[c];
    }
  }
}

inline void Put(const TensorView& out, int64_t row, int64_t col, float v) {
  if (out.dtype == DType::kF32) {
    ActRow<float>(out, row)[col] = v;
  } else {
    ActRow<uint16_t>(out, row)[col] = FloatToBf16Bits(v);
  }
}

template <typename TA>
void GemmTyped(const GemmTask& t, const TA* a) {
  float acc[kBlockCols];
  for (int64_t b = t.block_begin; b < t.block_end; ++b) {
    for (int64_t m = 0; m < t.a.rows; ++m) {
      RowBlock(a + m * t.a.row_stride, *t.w, b, acc);
      if (t.epilogue == GemmEpilogue::kStore) {
        const int64_t col0 = b * kBlockCols;
        const int64_t valid = std::min<int64_t>(kBlockCols, t.w->rows - col0);
        for (int64_t c = 0; c < valid; ++c) {
          float y = acc[c];
          if (t.bias != nullptr) y += t.bias[col0 + c];
          Put(t.out, m, col0 + c, y);
        }
      } else {
        const int64_t col0 = b * kHalfBlockCols;
        const int64_t valid = std::min<int64_t>(kHalfBlockCols, t.out.cols - col0);
        for (int64_t c = 0; c < valid; ++c) {
          const float g = acc[c];
          Put(t.out, m, col0 + c, g / (1.f + std::exp(-g)) * acc[kHalfBlockCols + c]);
        }
      }
    }
  }
}

}  // namespace
}  // namespace scalar

namespace internal {
void GemmScalar(const GemmTask& task) {
  if (task.a.dtype == DType::kBF16) {
    scalar::GemmTyped(task, ActRow<uint16_t>(task.a, 0));
  } else {
    scalar::GemmTyped(task, ActRow<float>(task.a, 0));
  }
}

void SiluMulScalar(const TensorView& x, const TensorView& out, int64_t begin, int64_t end) {
  const int64_t f = out.cols;
  auto elem = [&](int64_t t, int64_t c) {
    return x.dtype == DType::kF32 ? ActRow<float>(x, t)[c]
                                  : Bf16BitsToFloat(ActRow<uint16_t>(x, t)[c]);
  };
  for (int64_t t = begin; t < end; ++t) {
    for (int64_t c = 0; c < f; ++c) {
      const float g = elem(t, c);
      scalar::Put(out, t, c, g / (1.f + std::exp(-g)) * elem(t, f + c));
    }
  }
}
}  // namespace internal

SiluMulKernel SiluMulKernelFor(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512Bf16:
      return internal::SiluMulAvx512;
    case CpuIsa::kAvx2:
      return internal::SiluMulAvx2;
    default:
      return internal::SiluMulScalar;
  }
}

GemmKernel GemmKernelFor(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512Bf16:
      return internal::GemmAvx512;
    case CpuIsa::kAvx2:
      return internal::GemmAvx2;
    default:
      return internal::GemmScalar;
  }
}

int GemmTileRows(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512Bf16:
      return 6;
    case CpuIsa::kAvx2:
      return 2;
    default:
      return 1;
  }
}

}  // namespace moe::engine::cpu
