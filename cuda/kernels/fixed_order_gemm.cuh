// Fixed-order GEMM kernel. CTA tile kBM x kBN outputs, 256 threads, each thread kTM x kTN outputs
// strided by (kBM / kTM, kBN / kTN) so that shared-memory reads and global stores of a warp are
// contiguous. k advances in slices of kFixedGemmBlockK staged in shared memory as f32 (zero past
// the end); every output is acc = fmaf(a_k, w_k, acc) for k = 0, 1, ... in order, and the slice
// width is the same for every configuration, so all configurations produce identical bits.
//
// Grouped: blockIdx.x enumerates m-tiles over the experts' segments in expert order; each CTA
// finds its expert with a block scan over the per-expert tile counts (offsets read on device).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "cuda/kernels/device_primitives.cuh"
#include "cuda/kernels/fixed_order_gemm.h"
#include "cuda/kernels/moe_index_math.h"
#include "cuda/kernels/row_access.cuh"

namespace moe::cuda::kernel {

inline constexpr int kFixedGemmThreads = 256;
inline constexpr int kFixedGemmBlockK = 16;

struct FixedGemmParams {
  const void* a;
  int64_t lda;
  const __nv_bfloat16* w;
  int64_t w_group_stride;  // elements per group: n_w * k
  const float* bias;
  const int32_t* expert_offsets;
  int num_groups;
  int64_t rows;
  int n;
  int k;
  void* out;
  int64_t ldc;
};

template <typename TA, typename TOut, bool kSwiGlu, int kBM, int kBN, int kTM, int kTN>
__global__ void __launch_bounds__(kFixedGemmThreads) FixedOrderGemmKernel(FixedGemmParams p) {
  static_assert((kBM / kTM) * (kBN / kTN) == kFixedGemmThreads, "thread tile");
  constexpr int kBK = kFixedGemmBlockK;
  constexpr int kPlanes = kSwiGlu ? 2 : 1;
  constexpr int kRowStep = kBM / kTM;
  constexpr int kColStep = kBN / kTN;
  __shared__ float a_s[kBK][kBM + 1];
  __shared__ float w_s[kPlanes][kBK][kBN + 1];
  __shared__ int tile_info[3];  // group, row_begin, row_end
  __shared__ int scan_scratch[33];

  const int tid = threadIdx.x;
  const int m_tile = blockIdx.x;
  const int n0 = blockIdx.y * kBN;
  int group = 0;
  int64_t row_begin = static_cast<int64_t>(m_tile) * kBM;
  int64_t row_end = MinI64(row_begin + kBM, p.rows);
  if (p.expert_offsets == nullptr) {
    if (row_begin >= p.rows) return;
  } else {
    if (tid == 0) tile_info[0] = -1;
    __syncthreads();
    int carry = 0;
    for (int g0 = 0; g0 < p.num_groups; g0 += kFixedGemmThreads) {
      const int g = g0 + tid;
      int tiles = 0;
      int64_t begin = 0, end = 0;
      if (g < p.num_groups) {
        begin = MinI64(p.expert_offsets[g], p.rows);
        end = MinI64(p.expert_offsets[g + 1], p.rows);
        tiles = end > begin ? static_cast<int>(CeilDiv(end - begin, kBM)) : 0;
      }
      int total = 0;
      const int prefix = carry + BlockExclusiveScan(tiles, scan_scratch, &total);
      if (tiles > 0 && m_tile >= prefix && m_tile < prefix + tiles) {
        const int64_t first = begin + static_cast<int64_t>(m_tile - prefix) * kBM;
        tile_info[0] = g;
        tile_info[1] = static_cast<int>(first);
        tile_info[2] = static_cast<int>(MinI64(first + kBM, end));
      }
      carry += total;
    }
    __syncthreads();
    group = tile_info[0];
    if (group < 0) return;
    row_begin = tile_info[1];
    row_end = tile_info[2];
  }

  const int tx = tid % kColStep;
  const int ty = tid / kColStep;
  const TA* a = static_cast<const TA*>(p.a);
  const __nv_bfloat16* w = p.w + static_cast<int64_t>(group) * p.w_group_stride;
  float acc[kPlanes][kTM][kTN];
#pragma unroll
  for (int pl = 0; pl < kPlanes; ++pl) {
#pragma unroll
    for (int i = 0; i < kTM; ++i) {
#pragma unroll
      for (int j = 0; j < kTN; ++j) acc[pl][i][j] = 0.f;
    }
  }

  for (int k0 = 0; k0 < p.k; k0 += kBK) {
    for (int idx = tid; idx < kBM * kBK; idx += kFixedGemmThreads) {
      const int m = idx / kBK;
      const int kk = idx % kBK;
      const int64_t r = row_begin + m;
      const int gk = k0 + kk;
      a_s[kk][m] = (r < row_end && gk < p.k) ? LoadAsFloat(a + r * p.lda + gk) : 0.f;
    }
#pragma unroll
    for (int pl = 0; pl < kPlanes; ++pl) {
      for (int idx = tid; idx < kBN * kBK; idx += kFixedGemmThreads) {
        const int nn = idx / kBK;
        const int kk = idx % kBK;
        const int col = n0 + nn;
        const int gk = k0 + kk;
        float v = 0.f;
        if (col < p.n && gk < p.k) {
          const int64_t w_row = kSwiGlu ? (pl == 0 ? PackedGateRow(col) : PackedUpRow(col)) : col;
          v = __bfloat162float(w[w_row * p.k + gk]);
        }
        w_s[pl][kk][nn] = v;
      }
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      float av[kTM];
#pragma unroll
      for (int i = 0; i < kTM; ++i) av[i] = a_s[kk][ty + i * kRowStep];
#pragma unroll
      for (int pl = 0; pl < kPlanes; ++pl) {
#pragma unroll
        for (int j = 0; j < kTN; ++j) {
          const float wv = w_s[pl][kk][tx + j * kColStep];
#pragma unroll
          for (int i = 0; i < kTM; ++i) acc[pl][i][j] = fmaf(av[i], wv, acc[pl][i][j]);
        }
      }
    }
    __syncthreads();
  }

  TOut* out = static_cast<TOut*>(p.out);
#pragma unroll
  for (int i = 0; i < kTM; ++i) {
    const int64_t r = row_begin + ty + i * kRowStep;
    if (r >= row_end) continue;
#pragma unroll
    for (int j = 0; j < kTN; ++j) {
      const int col = n0 + tx + j * kColStep;
      if (col >= p.n) continue;
      float v;
      if constexpr (kSwiGlu) {
        v = __fmul_rn(Silu(acc[0][i][j]), acc[kPlanes - 1][i][j]);
      } else {
        v = acc[0][i][j];
        if (p.bias != nullptr) v = __fadd_rn(v, p.bias[col]);
      }
      StoreFromFloat(out + r * p.ldc + col, v);
    }
  }
}

}  // namespace moe::cuda::kernel
