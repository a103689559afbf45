// Grouped expert GEMM kernel (sm_80+ mma.sync path; see grouped_gemm.h for the contract).
//
// One persistent CTA walks tiles blockIdx.x, blockIdx.x + gridDim.x, ... of the ragged schedule
// (moe_index_math.h). Per tile:
//
//   global --cp.async 16 B (zero-fill out of range)--> smem stage s (kStages-deep ring)
//     A tile [kBM][kBK], B tile [kBN][kBK], both k-contiguous, XOR-swizzled 16-byte chunks
//   smem --ldmatrix.x4--> fragments --mma.sync.m16n8k16 bf16->f32--> registers
//   registers --epilogue (SwiGLU or plain, bf16 round)--> global
//
// Warp layout: kWM x kWN warps, each owning a (kBM / kWM) x (kBN / kWN) sub-tile made of m16 x n8
// mma tiles. B (the weights, [n][k] row-major) is already the "col" operand of mma.row.col, so
// ldmatrix without .trans feeds it directly.
#pragma once

#include <cuda_bf16.h>

#include <atomic>
#include <cstdint>

#include "cuda/kernels/device_primitives.cuh"
#include "cuda/kernels/grouped_gemm.h"
#include "cuda/kernels/moe_index_math.h"

namespace moe::cuda::kernel {

struct GroupedGemmParams {
  const __nv_bfloat16* a;      // [rows or source rows, lda]
  const int32_t* a_row_index;  // [row_capacity] or null
  int64_t lda;
  const __nv_bfloat16* w;         // [num_experts, n, k]
  int64_t w_expert_stride;        // n * k
  const int32_t* expert_offsets;  // [num_experts + 1]
  int num_experts;
  __nv_bfloat16* out;  // [row_capacity, ldc]
  int64_t ldc;
  int64_t row_capacity;
  int n;
  int k;
  int num_n_tiles;
};

__device__ __forceinline__ float Silu(float x) { return x / (1.f + expf(-x)); }

template <int kBM, int kBN, int kBK, int kWM, int kWN, int kStages, int kMinBlocks, bool kSwiGlu>
__global__ void __launch_bounds__(kWM* kWN * 32, kMinBlocks)
    GroupedGemmKernel(const GroupedGemmParams p) {
  constexpr int kThreads = kWM * kWN * 32;
  constexpr int kTM = kBM / kWM;  // warp tile
  constexpr int kTN = kBN / kWN;
  constexpr int kMT = kTM / 16;  // mma tiles per warp
  constexpr int kNT = kTN / 8;
  constexpr int kChunks = kBK / 8;  // 16-byte chunks per smem row
  constexpr int kAElems = kBM * kBK;
  constexpr int kStageBytes = (kBM + kBN) * kBK * 2;
  constexpr int kALoads = kBM * kChunks / kThreads;
  constexpr int kBLoads = kBN * kChunks / kThreads;
  static_assert(kTM % 16 == 0 && kTN % 16 == 0, "warp tile must be m16 x (2 x n8)");
  static_assert(kChunks == 2 || kChunks == 4 || kChunks == 8, "block_k in {16, 32, 64}");
  static_assert(kALoads * kThreads == kBM * kChunks, "A tile copy must divide evenly");
  static_assert(kBLoads * kThreads == kBN * kChunks, "B tile copy must divide evenly");
  static_assert(kThreads % kChunks == 0, "each thread copies one fixed k column");
  constexpr int kRowsPerPass = kThreads / kChunks;
  constexpr int kPassBytes = kRowsPerPass * kBK * 2;
  static_assert(kRowsPerPass % 8 == 0, "copy passes must keep the swizzle phase");
  static_assert(kStages >= 2, "pipeline needs at least two stages");

  MOE_DYNAMIC_SMEM(unsigned char, smem);
  int32_t* s_offsets = reinterpret_cast<int32_t*>(smem + kStages * kStageBytes);  // [E + 1]
  int32_t* s_prefix = s_offsets + p.num_experts + 1;                              // [E + 1]

  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int warp_m = warp / kWN;
  const int warp_n = warp % kWN;

  // Schedule: segment starts and the exclusive prefix of m-tiles per expert (warp 0).
  if (warp == 0) {
    int carry = 0;
    for (int base = 0; base < p.num_experts; base += 32) {
      const int e = base + lane;
      int tiles = 0;
      if (e < p.num_experts) {
        const int32_t begin = p.expert_offsets[e];
        s_offsets[e] = begin;
        tiles = SegmentMTiles(begin, p.expert_offsets[e + 1], kBM);
      }
      const int inclusive = WarpInclusiveScan(tiles);
      if (e < p.num_experts) s_prefix[e] = carry + inclusive - tiles;
      carry += __shfl_sync(kFullMask, inclusive, 31);
    }
    if (lane == 0) {
      s_prefix[p.num_experts] = carry;
      s_offsets[p.num_experts] = p.expert_offsets[p.num_experts];
    }
  }
  __syncthreads();

  const uint32_t smem_base = SmemAddress(smem);
  const int k_col = (tid % kChunks) * 8;  // this thread's k offset inside a k tile
  const int copy_row = tid / kChunks;     // first tile row this thread copies
  const uint32_t copy_dst = static_cast<uint32_t>(SwizzledOffset(copy_row, tid % kChunks, kBK) * 2);
  const int num_k_tiles = static_cast<int>(CeilDiv(p.k, kBK));
  const int64_t num_tiles = static_cast<int64_t>(s_prefix[p.num_experts]) * p.num_n_tiles;

  for (int64_t tile = blockIdx.x; tile < num_tiles; tile += gridDim.x) {
    const GroupedTile t = DecodeGroupedTile(tile, p.num_n_tiles, s_prefix, s_offsets, p.num_experts,
                                            kBM, kBN, p.row_capacity);
    if (t.row_end <= t.row_begin) continue;  // only for offsets past row_capacity; uniform
    const __nv_bfloat16* w = p.w + t.expert * p.w_expert_stride;

    // Fixed copy assignments for this tile. Thread tid copies chunk tid % kChunks of rows
    // copy_row, copy_row + kRowsPerPass, ...; kRowsPerPass is a multiple of the swizzle period
    // (8 rows), so every pass lands at the same swizzled offset plus a constant.
    const __nv_bfloat16* a_src[kALoads];
    bool a_ok[kALoads];
#pragma unroll
    for (int i = 0; i < kALoads; ++i) {
      const int32_t grow = t.row_begin + copy_row + i * kRowsPerPass;
      int64_t src_row = -1;
      if (grow < t.row_end) src_row = p.a_row_index != nullptr ? p.a_row_index[grow] : grow;
      a_ok[i] = src_row >= 0;
      a_src[i] = p.a + (a_ok[i] ? src_row * p.lda : 0) + k_col;
    }
    const __nv_bfloat16* b_src = w + static_cast<int64_t>(t.n_begin + copy_row) * p.k + k_col;
    const int b_rows_left = p.n - (t.n_begin + copy_row);  // pass i valid while < this
    auto load_stage = [&](int stage, int k_tile) {
      const int k0 = k_tile * kBK;
      const bool k_ok = k0 + k_col < p.k;
      const uint32_t a_base = smem_base + stage * kStageBytes + copy_dst;
      const uint32_t b_base = a_base + kAElems * 2;
#pragma unroll
      for (int i = 0; i < kALoads; ++i) {
        const bool ok = a_ok[i] && k_ok;
        CpAsync16(a_base + i * kPassBytes, ok ? a_src[i] + k0 : p.a, ok);
      }
#pragma unroll
      for (int i = 0; i < kBLoads; ++i) {
        const bool ok = i * kRowsPerPass < b_rows_left && k_ok;
        CpAsync16(b_base + i * kPassBytes,
                  ok ? b_src + static_cast<int64_t>(i) * kRowsPerPass * p.k + k0 : p.w, ok);
      }
    };

    float acc[kMT][kNT][4];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[mt][nt][i] = 0.f;
      }
    }

    // Prologue: kStages - 1 tiles in flight. Groups are committed even when empty so that
    // wait_group<kStages - 2> always means "k tile kt has landed".
#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
      if (s < num_k_tiles) load_stage(s, s);
      CpAsyncCommit();
    }
    for (int kt = 0; kt < num_k_tiles; ++kt) {
      CpAsyncWait<kStages - 2>();
      // Tile kt is visible to all warps, and every warp is done with stage (kt - 1) % kStages,
      // which the next load overwrites.
      __syncthreads();
      const int next = kt + kStages - 1;
      if (next < num_k_tiles) load_stage(next % kStages, next);
      CpAsyncCommit();

      const uint32_t a_base = smem_base + (kt % kStages) * kStageBytes;
      const uint32_t b_base = a_base + kAElems * 2;
#pragma unroll
      for (int kk = 0; kk < kBK / 16; ++kk) {
        uint32_t af[kMT][4];
        uint32_t bf[kNT][2];
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          const RowChunk rc = LdmatrixALane(lane, warp_m * kTM + mt * 16, kk);
          LdMatrixX4(af[mt], a_base + SwizzledOffset(rc.row, rc.chunk, kBK) * 2);
        }
#pragma unroll
        for (int np = 0; np < kNT / 2; ++np) {
          const RowChunk rc = LdmatrixBLane(lane, warp_n * kTN + np * 16, kk);
          uint32_t r[4];
          LdMatrixX4(r, b_base + SwizzledOffset(rc.row, rc.chunk, kBK) * 2);
          bf[2 * np][0] = r[0];
          bf[2 * np][1] = r[1];
          bf[2 * np + 1][0] = r[2];
          bf[2 * np + 1][1] = r[3];
        }
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
          for (int nt = 0; nt < kNT; ++nt) {
            MmaBf16M16N8K16(acc[mt][nt], af[mt], bf[nt][0], bf[nt][1]);
          }
        }
      }
    }
    // Drain (only empty groups remain) and make the stages free for the next tile's prologue.
    CpAsyncWait<0>();
    __syncthreads();

    // Epilogue: registers (2 half, 2 half + 1) of every mma tile are two adjacent columns of
    // one row (AccumulatorRow / AccumulatorCol).
    const int acc_col = AccumulatorCol(lane, 0);
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int32_t grow = t.row_begin + warp_m * kTM + mt * 16 + AccumulatorRow(lane, 2 * half);
        if (grow >= t.row_end) continue;
        __nv_bfloat16* out_row = p.out + grow * p.ldc;
        if constexpr (kSwiGlu) {
          // n8 tiles 2np (gate) and 2np + 1 (up) hold the same 8 features (PackedGateRow).
#pragma unroll
          for (int np = 0; np < kNT / 2; ++np) {
            const int packed = t.n_begin + warp_n * kTN + np * 16;
            if (packed >= p.n) continue;
            const float* gate = acc[mt][2 * np];
            const float* up = acc[mt][2 * np + 1];
            const float h0 = Silu(gate[2 * half]) * up[2 * half];
            const float h1 = Silu(gate[2 * half + 1]) * up[2 * half + 1];
            *reinterpret_cast<uint32_t*>(out_row + FeatureOfPackedRow(packed + acc_col)) =
                PackBf16x2(h0, h1);
          }
        } else {
#pragma unroll
          for (int nt = 0; nt < kNT; ++nt) {
            const int col = t.n_begin + warp_n * kTN + nt * 8;
            if (col >= p.n) continue;
            *reinterpret_cast<uint32_t*>(out_row + col + acc_col) =
                PackBf16x2(acc[mt][nt][2 * half], acc[mt][nt][2 * half + 1]);
          }
        }
      }
    }
  }
}

// Per-device launch facts of one kernel instantiation, computed once (the first launch on a
// device sets the shared-memory opt-in and queries SMs and occupancy); later launches only read
// them, so the launcher's host cost stays a few hundred nanoseconds.
struct KernelDeviceInfo {
  int num_sms = 0;
  int blocks_per_sm = 0;
};

inline constexpr int kMaxCachedDevices = 64;

template <typename Kernel>
cudaError_t KernelInfoForCurrentDevice(Kernel kernel_fn, int threads, int64_t max_smem,
                                       std::atomic<int64_t> (&cache)[kMaxCachedDevices],
                                       KernelDeviceInfo* info) {
  int device = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return err;
  const int64_t cached =
      device < kMaxCachedDevices ? cache[device].load(std::memory_order_acquire) : 0;
  if (cached != 0) {
    info->num_sms = static_cast<int>(cached >> 32);
    info->blocks_per_sm = static_cast<int>(cached & 0xffffffff);
    return cudaSuccess;
  }
  err = cudaFuncSetAttribute(kernel_fn, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(max_smem));
  if (err != cudaSuccess) return err;
  err = cudaDeviceGetAttribute(&info->num_sms, cudaDevAttrMultiProcessorCount, device);
  if (err != cudaSuccess) return err;
  // Occupancy at the largest schedule; smaller expert counts can only fit as many or more.
  err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&info->blocks_per_sm, kernel_fn, threads,
                                                      static_cast<size_t>(max_smem));
  if (err != cudaSuccess) return err;
  if (info->blocks_per_sm < 1) return cudaErrorInvalidConfiguration;
  if (device < kMaxCachedDevices) {
    cache[device].store((static_cast<int64_t>(info->num_sms) << 32) | info->blocks_per_sm,
                        std::memory_order_release);
  }
  return cudaSuccess;
}

// Host side: launches one configuration as a persistent grid of
// min(tile bound, SMs x resident CTAs) CTAs.
template <int kBM, int kBN, int kBK, int kWM, int kWN, int kStages, int kMinBlocks, bool kSwiGlu>
cudaError_t LaunchGroupedGemmConfig(const internal::GroupedGemmLaunch& l, cudaStream_t stream) {
  constexpr int kThreads = kWM * kWN * 32;
  constexpr int64_t kPipelineBytes = static_cast<int64_t>(kStages) * (kBM + kBN) * kBK * 2;
  const auto kernel_fn = &GroupedGemmKernel<kBM, kBN, kBK, kWM, kWN, kStages, kMinBlocks, kSwiGlu>;
  static std::atomic<int64_t> cache[kMaxCachedDevices];
  KernelDeviceInfo info;
  cudaError_t err = KernelInfoForCurrentDevice(
      kernel_fn, kThreads, kPipelineBytes + ScheduleSmemBytes(kGroupedGemmMaxExperts), cache,
      &info);
  if (err != cudaSuccess) return err;
  const int num_sms = l.num_sms > 0 ? l.num_sms : info.num_sms;
  const int num_n_tiles = static_cast<int>(CeilDiv(l.n, kBN));
  const int64_t max_tiles = MaxGroupedMTiles(l.row_capacity, l.num_experts, kBM) * num_n_tiles;
  const int64_t grid = MinI64(max_tiles, static_cast<int64_t>(num_sms) * info.blocks_per_sm);
  if (grid <= 0) return cudaSuccess;
  const int64_t smem = kPipelineBytes + ScheduleSmemBytes(l.num_experts);

  GroupedGemmParams p{};
  p.a = static_cast<const __nv_bfloat16*>(l.a);
  p.a_row_index = l.a_row_index;
  p.lda = l.lda;
  p.w = static_cast<const __nv_bfloat16*>(l.weights);
  p.w_expert_stride = static_cast<int64_t>(l.n) * l.k;
  p.expert_offsets = l.expert_offsets;
  p.num_experts = l.num_experts;
  p.out = static_cast<__nv_bfloat16*>(l.out);
  p.ldc = l.ldc;
  p.row_capacity = l.row_capacity;
  p.n = l.n;
  p.k = l.k;
  p.num_n_tiles = num_n_tiles;
  MOE_LAUNCH(static_cast<unsigned>(grid), kThreads, static_cast<size_t>(smem), stream, kernel_fn)
  (p);
  return cudaGetLastError();
}

// Dispatches a resolved tile configuration (the shapes of moe_index_math.h).
template <bool kSwiGlu>
cudaError_t LaunchGroupedGemmTile(const internal::GroupedGemmLaunch& l, GroupedGemmTile tile,
                                  cudaStream_t stream) {
  switch (tile) {
    case GroupedGemmTile::kM16:
      return LaunchGroupedGemmConfig<kTileM16.block_m, kTileM16.block_n, kTileM16.block_k,
                                     kTileM16.warps_m, kTileM16.warps_n, kTileM16.stages, 4,
                                     kSwiGlu>(l, stream);
    case GroupedGemmTile::kM64:
      return LaunchGroupedGemmConfig<kTileM64.block_m, kTileM64.block_n, kTileM64.block_k,
                                     kTileM64.warps_m, kTileM64.warps_n, kTileM64.stages, 4,
                                     kSwiGlu>(l, stream);
    case GroupedGemmTile::kM128:
      return LaunchGroupedGemmConfig<kTileM128.block_m, kTileM128.block_n, kTileM128.block_k,
                                     kTileM128.warps_m, kTileM128.warps_n, kTileM128.stages, 2,
                                     kSwiGlu>(l, stream);
    case GroupedGemmTile::kAuto:
      break;
  }
  return cudaErrorInvalidValue;
}

}  // namespace moe::cuda::kernel
