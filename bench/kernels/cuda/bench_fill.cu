#include "bench/kernels/cuda/bench_fill.h"

#include <cuda_bf16.h>

#include "cuda/kernels/device_primitives.cuh"  // MOE_LAUNCH

namespace moe::bench {
namespace {

__global__ void FillRandomBf16Kernel(__nv_bfloat16* data, size_t count, float scale,
                                     uint64_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + i * 0xBF58476D1CE4E5B9ull + 1;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const float u = static_cast<float>(z >> 40) * (2.f / 16777216.f) - 1.f;
    data[i] = __float2bfloat16_rn(scale * u);
  }
}

}  // namespace

cudaError_t FillRandomBf16(Bf16* data, size_t count, float scale, uint64_t seed,
                           cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  MOE_LAUNCH(4096, 256, 0, stream, FillRandomBf16Kernel)
  (reinterpret_cast<__nv_bfloat16*>(data), count, scale, seed);
  return cudaGetLastError();
}

}  // namespace moe::bench
