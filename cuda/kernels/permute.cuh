// Permute kernels (see permute.h for the contract and cuda/kernels/moe_index_math.h for the
// chunk / warp / round decomposition that makes the counting sort stable).
#pragma once

#include <cstdint>

#include "cuda/kernels/device_primitives.cuh"
#include "cuda/kernels/moe_index_math.h"

namespace moe::cuda::kernel {

struct PermuteParams {
  const int32_t* expert_ids;  // [num_slots]
  int64_t num_slots;          // num_tokens * top_k
  int top_k;
  int num_experts;
  int row_alignment;
  int num_chunks;
  int32_t* chunk_counts;    // [num_chunks, num_experts]: histogram, then row base
  int32_t* expert_offsets;  // [num_experts + 1]
  int32_t* row_to_token;    // [capacity]
  int32_t* slot_to_row;     // [num_slots]
};

inline constexpr int kPermuteThreads = 32 * kPermuteWarpsPerChunk;

// Pass 1: chunk_counts[c][e] = rows of expert e among the slots of chunk c.
__global__ void __launch_bounds__(kPermuteThreads) PermuteCountKernel(PermuteParams p) {
  MOE_DYNAMIC_SMEM(int32_t, s_count);  // [num_experts]
  for (int e = threadIdx.x; e < p.num_experts; e += blockDim.x) s_count[e] = 0;
  __syncthreads();
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kPermuteSlotsPerChunk;
  const int64_t end = MinI64(begin + kPermuteSlotsPerChunk, p.num_slots);
  for (int64_t s = begin + threadIdx.x; s < end; s += blockDim.x) {
    const int32_t e = p.expert_ids[s];
    if (IsRoutedExpert(e, p.num_experts)) atomicAdd(&s_count[e], 1);
  }
  __syncthreads();
  int32_t* out = p.chunk_counts + static_cast<int64_t>(blockIdx.x) * p.num_experts;
  for (int e = threadIdx.x; e < p.num_experts; e += blockDim.x) out[e] = s_count[e];
}

// Pass 2 (one CTA of kPermuteMaxExperts threads, thread e = expert e): turns the histograms into
// row bases, chunk_counts[c][e] = expert start + rows of e in chunks < c; writes expert_offsets
// and marks pad rows.
__global__ void __launch_bounds__(kPermuteMaxExperts) PermuteScanKernel(PermuteParams p) {
  __shared__ int scratch[33];
  const int e = threadIdx.x;
  const bool active = e < p.num_experts;
  // Loads are batched (kScanBatch independent loads in flight) so the walk over chunks is not
  // one dependent L2 round trip per chunk.
  constexpr int kScanBatch = 8;
  // chunk_counts[c][e] = column[c * num_experts]; chunks x experts < 2^31 (PermuteCanImplement).
  int32_t* column = p.chunk_counts + e;
  int count = 0;
  if (active) {
    for (int c0 = 0; c0 < p.num_chunks; c0 += kScanBatch) {
      int32_t n[kScanBatch];
#pragma unroll
      for (int u = 0; u < kScanBatch; ++u) {
        n[u] = c0 + u < p.num_chunks ? column[(c0 + u) * p.num_experts] : 0;
      }
#pragma unroll
      for (int u = 0; u < kScanBatch; ++u) {
        if (c0 + u < p.num_chunks) column[(c0 + u) * p.num_experts] = count;
        count += n[u];
      }
    }
  }
  const int segment = active ? static_cast<int>(SegmentRows(count, p.row_alignment)) : 0;
  int total = 0;
  const int start = BlockExclusiveScan(segment, scratch, &total);
  if (!active) return;
  p.expert_offsets[e] = start;
  if (e == p.num_experts - 1) p.expert_offsets[p.num_experts] = total;
  for (int c = 0; c < p.num_chunks; ++c) column[c * p.num_experts] += start;
  for (int r = start + count; r < start + segment; ++r) p.row_to_token[r] = -1;
}

// Pass 3: stable ranks. Each warp counts its slots per expert, the warps' counts are scanned on
// top of the chunk's base, then each warp walks its rounds in order; lanes with the same expert
// in a round (match_any) take consecutive rows in lane order.
__global__ void __launch_bounds__(kPermuteThreads, 4) PermuteRankKernel(PermuteParams p) {
  MOE_DYNAMIC_SMEM(int32_t, s_warp_base);  // [kPermuteWarpsPerChunk, num_experts]
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int num_experts = p.num_experts;
  for (int i = threadIdx.x; i < kPermuteWarpsPerChunk * num_experts; i += blockDim.x) {
    s_warp_base[i] = 0;
  }
  __syncthreads();
  const SlotRange range = PermuteWarpSlots(p.num_slots, blockIdx.x, warp);
  int32_t* my_base = s_warp_base + warp * num_experts;
  for (int64_t s = range.begin + lane; s < range.end; s += 32) {
    const int32_t e = p.expert_ids[s];
    if (IsRoutedExpert(e, num_experts)) atomicAdd(&my_base[e], 1);
  }
  __syncthreads();
  const int32_t* chunk_base = p.chunk_counts + static_cast<int64_t>(blockIdx.x) * num_experts;
  for (int e = threadIdx.x; e < num_experts; e += blockDim.x) {
    int32_t running = chunk_base[e];
    for (int w = 0; w < kPermuteWarpsPerChunk; ++w) {
      const int32_t n = s_warp_base[w * num_experts + e];
      s_warp_base[w * num_experts + e] = running;
      running += n;
    }
  }
  __syncthreads();
  const unsigned lanes_below = (1u << lane) - 1u;
  for (int64_t round_begin = range.begin; round_begin < range.end; round_begin += 32) {
    const int64_t s = round_begin + lane;
    int32_t e = -1;
    if (s < range.end) {
      e = p.expert_ids[s];
      if (!IsRoutedExpert(e, num_experts)) e = -1;
    }
    const unsigned peers = __match_any_sync(kFullMask, e);
    if (e >= 0) {
      const int32_t row = my_base[e] + __popc(peers & lanes_below);
      p.slot_to_row[s] = row;
      p.row_to_token[row] = static_cast<int32_t>(s / p.top_k);
    } else if (s < range.end) {
      p.slot_to_row[s] = -1;
    }
    __syncwarp();
    if (e >= 0 && lane == __ffs(peers) - 1) my_base[e] += __popc(peers);
    __syncwarp();
  }
}

struct GatherParams {
  const char* x;
  int64_t x_stride;  // bytes
  char* rows;
  int64_t rows_stride;  // bytes
  int64_t row_bytes;
  const int32_t* expert_offsets;  // [num_experts + 1]
  int num_experts;
  const int32_t* row_to_token;
};

inline constexpr int kGatherThreads = 256;
inline constexpr int kGatherUnroll = 4;  // vectors in flight per thread

// Pass 4: rows[r] = x[row_to_token[r]] (zeros for -1), one warp per row, TVec-wide accesses,
// kGatherUnroll loads issued before their stores.
template <typename TVec>
__global__ void __launch_bounds__(kGatherThreads) GatherRowsKernel(GatherParams p) {
  const int64_t num_rows = p.expert_offsets[p.num_experts];
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (kGatherThreads / 32);
  const int64_t vecs = p.row_bytes / static_cast<int64_t>(sizeof(TVec));
  for (int64_t r = blockIdx.x * (kGatherThreads / 32) + (threadIdx.x >> 5); r < num_rows;
       r += warps) {
    const int32_t token = p.row_to_token[r];
    TVec* dst = reinterpret_cast<TVec*>(p.rows + r * p.rows_stride);
    const TVec* src =
        token >= 0 ? reinterpret_cast<const TVec*>(p.x + token * p.x_stride) : nullptr;
    for (int64_t base = lane; base < vecs; base += 32 * kGatherUnroll) {
      TVec v[kGatherUnroll];
#pragma unroll
      for (int u = 0; u < kGatherUnroll; ++u) {
        const int64_t i = base + u * 32;
        v[u] = TVec{};
        if (src != nullptr && i < vecs) v[u] = src[i];
      }
#pragma unroll
      for (int u = 0; u < kGatherUnroll; ++u) {
        const int64_t i = base + u * 32;
        if (i < vecs) dst[i] = v[u];
      }
    }
  }
}

}  // namespace moe::cuda::kernel
