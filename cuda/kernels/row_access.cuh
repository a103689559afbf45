// Device helpers shared by the CudaBackend's row kernels (row copies, norms, rope, attention,
// activations, the fixed-order GEMM): 8-element vector access with f32 conversion, rounding to a
// storage type, and warp/block reductions in a fixed order. Device code only.
//
// Reductions use a butterfly (xor) tree: every lane ends with the same bits, and the order of the
// additions depends only on blockDim, never on the data or on other rows (DESIGN.md §4).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/kernels/device_primitives.cuh"

namespace moe::cuda::kernel {

// v[0..7] = p[0..7] as floats; p is 16-byte aligned.
__device__ __forceinline__ void Load8(const float* p, float (&v)[8]) {
  const float4 a = reinterpret_cast<const float4*>(p)[0];
  const float4 b = reinterpret_cast<const float4*>(p)[1];
  v[0] = a.x;
  v[1] = a.y;
  v[2] = a.z;
  v[3] = a.w;
  v[4] = b.x;
  v[5] = b.y;
  v[6] = b.z;
  v[7] = b.w;
}

__device__ __forceinline__ void Load8(const __nv_bfloat16* p, float (&v)[8]) {
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    v[2 * i] = __uint_as_float(w[i] << 16);
    v[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

// p[0..7] = v rounded to the element type (nearest even); p is 16-byte aligned.
__device__ __forceinline__ void Store8(float* p, const float (&v)[8]) {
  reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
  reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
}

__device__ __forceinline__ void Store8(__nv_bfloat16* p, const float (&v)[8]) {
  uint4 u;
  u.x = PackBf16x2(v[0], v[1]);
  u.y = PackBf16x2(v[2], v[3]);
  u.z = PackBf16x2(v[4], v[5]);
  u.w = PackBf16x2(v[6], v[7]);
  *reinterpret_cast<uint4*>(p) = u;
}

// v rounded to T's precision, returned as float (the value a store to T then a load would give).
template <typename T>
__device__ __forceinline__ float RoundAs(float v);
template <>
__device__ __forceinline__ float RoundAs<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ float RoundAs<__nv_bfloat16>(float v) {
  return __bfloat162float(__float2bfloat16_rn(v));
}

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

__device__ __forceinline__ float WarpMax(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
  }
  return v;
}

// Sum of one value per thread over the block (blockDim.x a multiple of 32, at most 1024), the
// same bits on every thread. `scratch` is shared memory of 33 floats. Contains __syncthreads().
__device__ __forceinline__ float BlockSum(float v, float* scratch) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int num_warps = blockDim.x >> 5;
  v = WarpSum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float s = lane < num_warps ? scratch[lane] : 0.f;
    s = WarpSum(s);
    if (lane == 0) scratch[32] = s;
  }
  __syncthreads();
  const float total = scratch[32];
  __syncthreads();  // scratch may be reused after return
  return total;
}

// silu(x) = x / (1 + e^-x), as the CPU reference writes it (IEEE division; expf within 2 ulp).
__device__ __forceinline__ float Silu(float x) { return __fdiv_rn(x, 1.f + expf(-x)); }

}  // namespace moe::cuda::kernel
