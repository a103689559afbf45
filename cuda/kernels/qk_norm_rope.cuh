// Q/K norm + RoPE kernel: one CTA per (token, matrix); the row is staged in shared memory as f32,
// normalised there (rounded as the reference rounds), then rotated and stored.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "cuda/kernels/qk_norm_rope.h"
#include "cuda/kernels/row_access.cuh"

namespace moe::cuda::kernel {

inline constexpr int kQkNormRopeThreads = 128;

struct QkNormRopeParams {
  void* m[2];  // q, k
  int64_t stride[2];
  int heads[2];
  const float* weight[2];  // norm weights of q, k
  const int32_t* positions;
  const float* inv_freq;
  int head_dim;
  int norm;  // QkNorm
  float eps;
};

template <typename T>
__global__ void __launch_bounds__(kQkNormRopeThreads) QkNormRopeKernel(QkNormRopeParams p) {
  MOE_DYNAMIC_SMEM(float, smem);
  __shared__ float scratch[33];
  const int64_t t = blockIdx.x;
  // q (blockIdx.y 0) or k; selected without indexing the parameter arrays dynamically.
  const bool is_q = blockIdx.y == 0;
  const int heads = is_q ? p.heads[0] : p.heads[1];
  const int d = p.head_dim;
  const int width = heads * d;
  float* row = smem;          // [width]
  float* inv = smem + width;  // [heads]
  T* m = static_cast<T*>(is_q ? p.m[0] : p.m[1]) + t * (is_q ? p.stride[0] : p.stride[1]);
  const float* weight = is_q ? p.weight[0] : p.weight[1];

  for (int c = threadIdx.x; c < width; c += kQkNormRopeThreads) row[c] = LoadAsFloat(m + c);
  __syncthreads();

  if (p.norm == static_cast<int>(QkNorm::kPerHead)) {
    const int lane = threadIdx.x & 31;
    for (int h = threadIdx.x >> 5; h < heads; h += kQkNormRopeThreads / 32) {
      float sum_sq = 0.f;
      for (int i = lane; i < d; i += 32) sum_sq = fmaf(row[h * d + i], row[h * d + i], sum_sq);
      sum_sq = WarpSum(sum_sq);
      if (lane == 0) inv[h] = 1.f / sqrtf(sum_sq / static_cast<float>(d) + p.eps);
    }
    __syncthreads();
    for (int c = threadIdx.x; c < width; c += kQkNormRopeThreads) {
      const float normed = RoundAs<T>(__fmul_rn(row[c], inv[c / d]));
      row[c] = RoundAs<T>(__fmul_rn(weight[c % d], normed));
    }
    __syncthreads();
  } else if (p.norm == static_cast<int>(QkNorm::kFull)) {
    float sum_sq = 0.f;
    for (int c = threadIdx.x; c < width; c += kQkNormRopeThreads) {
      sum_sq = fmaf(row[c], row[c], sum_sq);
    }
    sum_sq = BlockSum(sum_sq, scratch);
    const float inv_all = 1.f / sqrtf(sum_sq / static_cast<float>(width) + p.eps);
    for (int c = threadIdx.x; c < width; c += kQkNormRopeThreads) {
      const float normed = RoundAs<T>(__fmul_rn(row[c], inv_all));
      row[c] = RoundAs<T>(__fmul_rn(weight[c], normed));
    }
    __syncthreads();
  }

  const int half = d / 2;
  const float position = static_cast<float>(p.positions[t]);
  for (int pair = threadIdx.x; pair < heads * half; pair += kQkNormRopeThreads) {
    const int h = pair / half;
    const int i = pair % half;
    const float angle = __fmul_rn(position, p.inv_freq[i]);
    const float c = static_cast<float>(cos(static_cast<double>(angle)));
    const float s = static_cast<float>(sin(static_cast<double>(angle)));
    const float x1 = row[h * d + i];
    const float x2 = row[h * d + i + half];
    StoreFromFloat(m + h * d + i, __fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s)));
    StoreFromFloat(m + h * d + i + half, __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s)));
  }
}

}  // namespace moe::cuda::kernel
