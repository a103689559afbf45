// Gated activation and bias-convert kernels: a 2-D grid of (row, 1024-column block), one element
// per thread and iteration.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "cuda/kernels/gated_activation.h"
#include "cuda/kernels/moe_index_math.h"
#include "cuda/kernels/row_access.cuh"

namespace moe::cuda::kernel {

inline constexpr int kElementwiseThreads = 256;
inline constexpr int kElementwiseColsPerBlock = 1024;

struct GatedActivationParams {
  const void* in;
  void* out;
  int64_t features;
  int64_t in_stride;
  int64_t out_stride;
};

template <typename TIn, typename TOut, bool kInterleaved>
__global__ void __launch_bounds__(kElementwiseThreads)
    GatedActivationKernel(GatedActivationParams p) {
  const int64_t r = blockIdx.x;
  const TIn* in = static_cast<const TIn*>(p.in) + r * p.in_stride;
  TOut* out = static_cast<TOut*>(p.out) + r * p.out_stride;
  const int64_t end = MinI64(p.features, (blockIdx.y + 1) * int64_t{kElementwiseColsPerBlock});
  for (int64_t f = blockIdx.y * int64_t{kElementwiseColsPerBlock} + threadIdx.x; f < end;
       f += kElementwiseThreads) {
    const int64_t gate_col = kInterleaved ? PackedGateRow(f) : f;
    const int64_t up_col = kInterleaved ? PackedUpRow(f) : p.features + f;
    const float g = LoadAsFloat(in + gate_col);
    const float u = LoadAsFloat(in + up_col);
    StoreFromFloat(out + f, __fmul_rn(Silu(g), u));
  }
}

struct AddBiasConvertParams {
  const float* in;
  const float* bias;
  void* out;
  int64_t cols;
  int64_t in_stride;
  int64_t out_stride;
};

template <typename TOut>
__global__ void __launch_bounds__(kElementwiseThreads)
    AddBiasConvertKernel(AddBiasConvertParams p) {
  const int64_t r = blockIdx.x;
  const float* in = p.in + r * p.in_stride;
  TOut* out = static_cast<TOut*>(p.out) + r * p.out_stride;
  const int64_t end = MinI64(p.cols, (blockIdx.y + 1) * int64_t{kElementwiseColsPerBlock});
  for (int64_t c = blockIdx.y * int64_t{kElementwiseColsPerBlock} + threadIdx.x; c < end;
       c += kElementwiseThreads) {
    const float v = p.bias != nullptr ? __fadd_rn(in[c], p.bias[c]) : in[c];
    StoreFromFloat(out + c, v);
  }
}

}  // namespace moe::cuda::kernel
