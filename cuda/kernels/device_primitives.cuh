// Device building blocks shared by the MoE kernels: cp.async, ldmatrix and mma.sync wrappers
// (sm_80+), bf16 packing, warp/block scans and vectorized element access, plus the two
// spellings that differ between nvcc and the CPU emulator (cuda/emu, MOE_CUDA_EMULATION):
// kernel launches and dynamic shared memory. Device code only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

// MOE_LAUNCH(grid, block, smem, stream, kernel)(args...) launches `kernel`; the kernel comes last
// so that template arguments with commas need no parentheses.
// MOE_DYNAMIC_SMEM(type, name) declares the block's dynamic shared memory as `name` (128-byte
// aligned), usable as an array of `type`.
#if defined(MOE_CUDA_EMULATION)
#define MOE_LAUNCH(grid, block, smem, stream, ...) \
  ::moe::cuda::emu::Launch(__VA_ARGS__, dim3(grid), dim3(block), smem, stream)
#define MOE_DYNAMIC_SMEM(type, name) \
  type* const name = reinterpret_cast<type*>(::moe::cuda::emu::DynamicSmem())
#else
#define MOE_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<grid, block, smem, stream>>>
#define MOE_DYNAMIC_SMEM(type, name) extern __shared__ __align__(128) type name[]
#endif

namespace moe::cuda::kernel {

inline constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ uint32_t SmemAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

#if defined(MOE_CUDA_EMULATION)
__device__ __forceinline__ void CpAsync16(uint32_t smem_dst, const void* global_src, bool valid) {
  ::moe::cuda::emu::CpAsync(smem_dst, global_src, 16, valid ? 16 : 0);
}
__device__ __forceinline__ void CpAsyncCommit() { ::moe::cuda::emu::CpAsyncCommit(); }
template <int kPending>
__device__ __forceinline__ void CpAsyncWait() {
  ::moe::cuda::emu::CpAsyncWait(kPending);
}
__device__ __forceinline__ void LdMatrixX4(uint32_t (&r)[4], uint32_t smem_addr) {
  ::moe::cuda::emu::LdMatrixX4(r, smem_addr);
}
__device__ __forceinline__ void MmaBf16M16N8K16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                uint32_t b1) {
  ::moe::cuda::emu::MmaBf16M16N8K16(d, a, b0, b1);
}
#else
// 16-byte global -> shared copy that bypasses L1; when !valid nothing is read and the 16 bytes
// are zero-filled (src must still be a mapped address; callers pass the tensor base).
__device__ __forceinline__ void CpAsync16(uint32_t smem_dst, const void* global_src, bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_dst), "l"(global_src),
               "r"(src_bytes)
               : "memory");
}

__device__ __forceinline__ void CpAsyncCommit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}

// Waits until at most kPending committed groups are still in flight.
template <int kPending>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i.
__device__ __forceinline__ void LdMatrixX4(uint32_t (&r)[4], uint32_t smem_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr)
               : "memory");
}

// d += a * b for one m16n8k16 tile, bf16 inputs, f32 accumulators.
// a: rows g / g+8, k pairs 2t / 2t+8 (ldmatrix x4 of a 16x16 row-major tile);
// b: k pairs 2t / 2t+8 of column g (ldmatrix of an [n][k] row-major tile);
// d: (g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1) with g = lane / 4, t = lane % 4.
__device__ __forceinline__ void MmaBf16M16N8K16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
      "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#endif  // MOE_CUDA_EMULATION

// Two floats rounded to nearest-even bf16, low half = lo.
__device__ __forceinline__ uint32_t PackBf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

__device__ __forceinline__ float LoadAsFloat(const float* p) { return *p; }
__device__ __forceinline__ float LoadAsFloat(const __nv_bfloat16* p) {
  return __bfloat162float(*p);
}
__device__ __forceinline__ void StoreFromFloat(float* p, float v) { *p = v; }
__device__ __forceinline__ void StoreFromFloat(__nv_bfloat16* p, float v) {
  *p = __float2bfloat16_rn(v);
}

// Inclusive prefix sum across the warp (all lanes participate).
__device__ __forceinline__ int WarpInclusiveScan(int v) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int d = 1; d < 32; d <<= 1) {
    const int y = __shfl_up_sync(kFullMask, v, d);
    if (lane >= d) v += y;
  }
  return v;
}

// Exclusive prefix sum of one value per thread over the whole block (blockDim.x a multiple of
// 32, at most 1024). `scratch` is shared memory of 33 ints. Returns the exclusive prefix and sets
// *total on every thread. Contains __syncthreads(): call from all threads of the block.
__device__ __forceinline__ int BlockExclusiveScan(int v, int* scratch, int* total) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int num_warps = blockDim.x >> 5;
  const int inclusive = WarpInclusiveScan(v);
  if (lane == 31) scratch[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    const int s = lane < num_warps ? scratch[lane] : 0;
    const int s_inclusive = WarpInclusiveScan(s);
    scratch[lane] = s_inclusive - s;  // exclusive base of warp `lane`
    if (lane == 31) scratch[32] = s_inclusive;
  }
  __syncthreads();
  const int result = scratch[warp] + inclusive - v;
  *total = scratch[32];
  __syncthreads();  // scratch may be reused after return
  return result;
}

}  // namespace moe::cuda::kernel
