// RMSNorm kernel: one CTA per row. Pass 1 applies the residual add (writing x back) and sums the
// squares; pass 2 re-reads x (this thread's own writes, already rounded) and normalises.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "cuda/kernels/rmsnorm.h"
#include "cuda/kernels/row_access.cuh"

namespace moe::cuda::kernel {

inline constexpr int kRmsNormThreads = 256;

struct RmsNormParams {
  void* x;
  const void* add;
  const float* weight;
  void* out;
  int64_t cols;
  int64_t x_stride;
  int64_t add_stride;
  int64_t out_stride;
  float eps;
};

template <typename TX, typename TOut>
__global__ void __launch_bounds__(kRmsNormThreads) RmsNormKernel(RmsNormParams p) {
  __shared__ float scratch[33];
  const int64_t row = blockIdx.x;
  TX* x = static_cast<TX*>(p.x) + row * p.x_stride;
  const TX* add = p.add != nullptr ? static_cast<const TX*>(p.add) + row * p.add_stride : nullptr;
  TOut* out = static_cast<TOut*>(p.out) + row * p.out_stride;
  float sum_sq = 0.f;
  for (int64_t c = threadIdx.x; c < p.cols; c += kRmsNormThreads) {
    float v = LoadAsFloat(x + c);
    if (add != nullptr) {
      v = RoundAs<TX>(__fadd_rn(v, LoadAsFloat(add + c)));
      StoreFromFloat(x + c, v);
    }
    sum_sq = fmaf(v, v, sum_sq);
  }
  sum_sq = BlockSum(sum_sq, scratch);
  const float inv = 1.f / sqrtf(sum_sq / static_cast<float>(p.cols) + p.eps);
  for (int64_t c = threadIdx.x; c < p.cols; c += kRmsNormThreads) {
    const float v = LoadAsFloat(x + c);
    const float normed = RoundAs<TOut>(__fmul_rn(v, inv));
    StoreFromFloat(out + c, __fmul_rn(p.weight[c], normed));
  }
}

}  // namespace moe::cuda::kernel
