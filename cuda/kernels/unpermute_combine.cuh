// UnpermuteCombine kernel: CTA (token, column block); each thread owns kVec consecutive columns
// (one 16-byte access when the layout allows, else kVec = 1) and walks the token's k slots in
// order.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "cuda/kernels/device_primitives.cuh"

namespace moe::cuda::kernel {

struct CombineParams {
  const void* y_rows;
  int64_t y_rows_stride;
  const int32_t* slot_to_row;
  const float* expert_weights;
  const void* shared;
  int64_t shared_stride;
  const void* shared_gate;
  int64_t shared_gate_stride;
  void* out;
  int64_t out_stride;
  int top_k;
  int hidden;
};

inline constexpr int kCombineThreads = 128;
inline constexpr int kCombineUnroll = 4;

template <typename T, int kVec>
struct alignas(sizeof(T) * kVec) VecOf {
  T v[kVec];
};

template <typename T, int kVec>
__device__ __forceinline__ void LoadVec(const T* p, float (&dst)[kVec]) {
  const VecOf<T, kVec> v = *reinterpret_cast<const VecOf<T, kVec>*>(p);
#pragma unroll
  for (int i = 0; i < kVec; ++i) dst[i] = LoadAsFloat(&v.v[i]);
}

template <typename T, typename TGate, int kVec>
__global__ void __launch_bounds__(kCombineThreads) UnpermuteCombineKernel(CombineParams p) {
  const int token = blockIdx.x;
  const int col = (blockIdx.y * kCombineThreads + threadIdx.x) * kVec;
  if (col >= p.hidden) return;
  float acc[kVec];
#pragma unroll
  for (int i = 0; i < kVec; ++i) acc[i] = 0.f;
  const int64_t slot0 = static_cast<int64_t>(token) * p.top_k;
  const T* y_rows = static_cast<const T*>(p.y_rows);
  // Slots in groups of kCombineUnroll: the group's rows are loaded together (loads in flight),
  // then added strictly in slot order.
  for (int j0 = 0; j0 < p.top_k; j0 += kCombineUnroll) {
    float rows[kCombineUnroll][kVec];
    float weights[kCombineUnroll];
    bool valid[kCombineUnroll];
#pragma unroll
    for (int u = 0; u < kCombineUnroll; ++u) {
      const int j = j0 + u;
      const int32_t r = j < p.top_k ? p.slot_to_row[slot0 + j] : -1;
      weights[u] = 0.f;
      if (r >= 0) {
        weights[u] = p.expert_weights[slot0 + j];
        LoadVec<T, kVec>(y_rows + r * p.y_rows_stride + col, rows[u]);
      }
      valid[u] = r >= 0;
    }
#pragma unroll
    for (int u = 0; u < kCombineUnroll; ++u) {
      if (!valid[u]) continue;
#pragma unroll
      for (int i = 0; i < kVec; ++i) {
        acc[i] = __fadd_rn(acc[i], __fmul_rn(weights[u], rows[u][i]));
      }
    }
  }
  float row[kVec];
  if (p.shared != nullptr) {
    float gate = 1.f;
    if (p.shared_gate != nullptr) {
      const float logit =
          LoadAsFloat(static_cast<const TGate*>(p.shared_gate) + token * p.shared_gate_stride);
      gate = 1.f / (1.f + expf(-logit));
    }
    LoadVec<T, kVec>(static_cast<const T*>(p.shared) + token * p.shared_stride + col, row);
#pragma unroll
    for (int i = 0; i < kVec; ++i) acc[i] = __fadd_rn(acc[i], __fmul_rn(gate, row[i]));
  }
  VecOf<T, kVec> out;
#pragma unroll
  for (int i = 0; i < kVec; ++i) StoreFromFloat(&out.v[i], acc[i]);
  *reinterpret_cast<VecOf<T, kVec>*>(static_cast<T*>(p.out) + token * p.out_stride + col) = out;
}

}  // namespace moe::cuda::kernel
