// Paged attention kernels: the per-sequence tile prefix (one CTA) and the attention kernel
// (CTA = tile of query rows of one sequence x a group of q heads of one KV head; 4 warps, warp w
// owns query vectors w, w + 4, w + 8, w + 12; lane j scores key j of the 32-key block; each lane
// accumulates output dims lane, lane + 32, ...).
#pragma once

#include <cuda_bf16.h>

#include <climits>
#include <cstdint>

#include "cuda/kernels/device_primitives.cuh"
#include "cuda/kernels/paged_attention.h"
#include "cuda/kernels/row_access.cuh"

namespace moe::cuda::kernel {

inline constexpr int kAttentionWarps = 4;
inline constexpr int kAttentionThreads = 32 * kAttentionWarps;
inline constexpr int kAttentionQPerWarp = kAttentionMaxQueries / kAttentionWarps;
static_assert(kAttentionKeyBlock == 32, "one key per lane");

struct PagedAttentionParams {
  const void* q;
  int64_t q_stride;
  const void* k_cache;
  const void* v_cache;
  int64_t cache_stride;
  int64_t cache_slots;
  void* out;
  int64_t out_stride;
  const int32_t* query_start;
  const int32_t* positions;
  const int32_t* block_tables;
  int max_blocks_per_seq;
  int block_size;
  int num_seqs;
  int head_dim;
  int group;          // q heads per KV head
  int heads_per_cta;  // divides group
  int rows_per_tile;  // rows_per_tile * heads_per_cta <= kAttentionMaxQueries
  float scale;
  int sliding_window;
  bool vec8;                   // head_dim % 8 == 0 and every K/V row start 16-byte aligned
  const int32_t* tile_prefix;  // [num_seqs + 1]
};

// tile_prefix[s] = sum over s' < s of ceil(rows(s') / rows_per_tile); one CTA of 1024 threads.
__global__ void __launch_bounds__(1024)
    AttentionTilePrefixKernel(const int32_t* query_start, int num_seqs, int rows_per_tile,
                              int32_t* tile_prefix) {
  __shared__ int scratch[33];
  int carry = 0;
  for (int s0 = 0; s0 < num_seqs; s0 += blockDim.x) {
    const int s = s0 + threadIdx.x;
    int tiles = 0;
    if (s < num_seqs) {
      const int rows = query_start[s + 1] - query_start[s];
      tiles = rows > 0 ? (rows + rows_per_tile - 1) / rows_per_tile : 0;
    }
    int total = 0;
    const int prefix = BlockExclusiveScan(tiles, scratch, &total);
    if (s < num_seqs) tile_prefix[s] = carry + prefix;
    carry += total;
  }
  if (threadIdx.x == 0) tile_prefix[num_seqs] = carry;
}

// Cache slot of key position j of the sequence, or -1 when it is outside the staged range, past
// the block table or outside the cache.
__device__ __forceinline__ int64_t KeySlot(const PagedAttentionParams& p, const int32_t* table,
                                           int j, int key_min, int key_max) {
  if (j < key_min || j > key_max) return -1;
  const int index = j / p.block_size;
  if (index >= p.max_blocks_per_seq) return -1;
  const int32_t block = table[index];
  if (block < 0) return -1;
  const int64_t slot = static_cast<int64_t>(block) * p.block_size + j % p.block_size;
  return slot < p.cache_slots ? slot : -1;
}

template <typename T, int kChunks>
__global__ void __launch_bounds__(kAttentionThreads) PagedAttentionKernel(PagedAttentionParams p) {
  MOE_DYNAMIC_SMEM(float, smem);
  __shared__ int q_pos[kAttentionMaxQueries];
  __shared__ int q_first[kAttentionMaxQueries];
  __shared__ int key_range[2];
  const int d = p.head_dim;
  const int kv_stride = d + 1;  // odd: lane j reading row j column i hits bank (j + i) % 32
  float* q_s = smem;            // [kAttentionMaxQueries][d]
  float* k_s = q_s + kAttentionMaxQueries * d;        // [kAttentionKeyBlock][d + 1]
  float* v_s = k_s + kAttentionKeyBlock * kv_stride;  // [kAttentionKeyBlock][d + 1]

  // Tile -> (sequence, rows): the last sequence whose tile prefix is <= tile (empty sequences
  // share their successor's prefix, so the last one is never empty).
  const int tile = blockIdx.x;
  if (tile >= p.tile_prefix[p.num_seqs]) return;
  int lo = 0;
  int hi = p.num_seqs - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (p.tile_prefix[mid] <= tile) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  const int seq = lo;
  const int row_begin = p.query_start[seq] + (tile - p.tile_prefix[seq]) * p.rows_per_tile;
  const int num_rows = min(p.rows_per_tile, p.query_start[seq + 1] - row_begin);
  const int head_groups = p.group / p.heads_per_cta;
  const int kv_head = blockIdx.y / head_groups;
  const int head0 = kv_head * p.group + (blockIdx.y % head_groups) * p.heads_per_cta;
  const int num_q = num_rows * p.heads_per_cta;

  const T* q = static_cast<const T*>(p.q);
  for (int idx = threadIdx.x; idx < num_q * d; idx += kAttentionThreads) {
    const int v = idx / d;
    const int i = idx % d;
    const int64_t row = row_begin + v / p.heads_per_cta;
    const int head = head0 + v % p.heads_per_cta;
    q_s[idx] = LoadAsFloat(q + row * p.q_stride + static_cast<int64_t>(head) * d + i);
  }
  if (threadIdx.x < num_q) {
    const int pos = p.positions[row_begin + threadIdx.x / p.heads_per_cta];
    q_pos[threadIdx.x] = pos;
    q_first[threadIdx.x] = p.sliding_window > 0 ? max(0, pos - p.sliding_window + 1) : 0;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    int key_min = INT_MAX;
    int key_max = -1;
    for (int v = 0; v < num_q; ++v) {
      key_min = min(key_min, q_first[v]);
      key_max = max(key_max, q_pos[v]);
    }
    key_range[0] = key_min;
    key_range[1] = key_max;
  }
  __syncthreads();
  const int key_min = key_range[0];
  const int key_max = key_range[1];

  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  float m_run[kAttentionQPerWarp];
  float l_run[kAttentionQPerWarp];
  float o[kAttentionQPerWarp][kChunks];
  int first[kAttentionQPerWarp];
  int last[kAttentionQPerWarp];
#pragma unroll
  for (int qi = 0; qi < kAttentionQPerWarp; ++qi) {
    const int v = warp + kAttentionWarps * qi;
    m_run[qi] = -INFINITY;
    l_run[qi] = 0.f;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) o[qi][c] = 0.f;
    first[qi] = v < num_q ? q_first[v] : 1;  // [1, 0]: empty
    last[qi] = v < num_q ? q_pos[v] : 0;
  }

  const int32_t* table = p.block_tables + static_cast<int64_t>(seq) * p.max_blocks_per_seq;
  const T* k_cache = static_cast<const T*>(p.k_cache) + static_cast<int64_t>(kv_head) * d;
  const T* v_cache = static_cast<const T*>(p.v_cache) + static_cast<int64_t>(kv_head) * d;
  const int first_block = key_max >= 0 ? key_min / kAttentionKeyBlock : 0;
  const int last_block = key_max >= 0 ? key_max / kAttentionKeyBlock : -1;

  for (int b = first_block; b <= last_block; ++b) {
    const int key0 = b * kAttentionKeyBlock;
    // Stage the block's K and V (zeros for keys outside the tile's range).
    if (p.vec8) {
      const int vecs = d / 8;
      for (int idx = threadIdx.x; idx < kAttentionKeyBlock * vecs; idx += kAttentionThreads) {
        const int jj = idx / vecs;
        const int i = (idx % vecs) * 8;
        const int64_t slot = KeySlot(p, table, key0 + jj, key_min, key_max);
        float kv[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
        float vv[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
        if (slot >= 0) {
          Load8(k_cache + slot * p.cache_stride + i, kv);
          Load8(v_cache + slot * p.cache_stride + i, vv);
        }
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          k_s[jj * kv_stride + i + e] = kv[e];
          v_s[jj * kv_stride + i + e] = vv[e];
        }
      }
    } else {
      for (int idx = threadIdx.x; idx < kAttentionKeyBlock * d; idx += kAttentionThreads) {
        const int jj = idx / d;
        const int i = idx % d;
        const int64_t slot = KeySlot(p, table, key0 + jj, key_min, key_max);
        k_s[jj * kv_stride + i] =
            slot >= 0 ? LoadAsFloat(k_cache + slot * p.cache_stride + i) : 0.f;
        v_s[jj * kv_stride + i] =
            slot >= 0 ? LoadAsFloat(v_cache + slot * p.cache_stride + i) : 0.f;
      }
    }
    __syncthreads();

    // Scores of key `lane` for the warp's query vectors: one sequential fmaf chain over d.
    float dot[kAttentionQPerWarp];
#pragma unroll
    for (int qi = 0; qi < kAttentionQPerWarp; ++qi) dot[qi] = 0.f;
    const float* k_row = k_s + lane * kv_stride;
    for (int i = 0; i < d; ++i) {
      const float kv = k_row[i];
#pragma unroll
      for (int qi = 0; qi < kAttentionQPerWarp; ++qi) {
        dot[qi] = fmaf(q_s[(warp + kAttentionWarps * qi) * d + i], kv, dot[qi]);
      }
    }

    // Online softmax update per query vector over its valid keys of this block: positions
    // [first, last] of the query vector, i.e. block slots [first - key0, last - key0].
    float prob[kAttentionQPerWarp];
    int lo_all = kAttentionKeyBlock;
    int hi_all = -1;
#pragma unroll
    for (int qi = 0; qi < kAttentionQPerWarp; ++qi) {
      const int lo = max(first[qi], key0) - key0;
      const int hi = min(last[qi], key0 + kAttentionKeyBlock - 1) - key0;
      prob[qi] = 0.f;
      if (lo > hi) continue;  // uniform across the warp
      const bool valid = lane >= lo && lane <= hi;
      const float score = valid ? __fmul_rn(dot[qi], p.scale) : -INFINITY;
      const float m_new = fmaxf(m_run[qi], WarpMax(score));
      const float alpha = expf(m_run[qi] - m_new);  // 0 for the first block (m_run = -inf)
      prob[qi] = valid ? expf(score - m_new) : 0.f;
      l_run[qi] = __fadd_rn(__fmul_rn(l_run[qi], alpha), WarpSum(prob[qi]));
#pragma unroll
      for (int c = 0; c < kChunks; ++c) o[qi][c] = __fmul_rn(o[qi][c], alpha);
      m_run[qi] = m_new;
      lo_all = min(lo_all, lo);
      hi_all = max(hi_all, hi);
    }
    // o += p_j * v_j over the valid keys in ascending order (V row shared by the query vectors).
    for (int jj = lo_all; jj <= hi_all; ++jj) {
      const int key = key0 + jj;
      float vv[kChunks];
#pragma unroll
      for (int c = 0; c < kChunks; ++c) vv[c] = v_s[jj * kv_stride + min(lane + 32 * c, d - 1)];
#pragma unroll
      for (int qi = 0; qi < kAttentionQPerWarp; ++qi) {
        if (key < first[qi] || key > last[qi]) continue;  // uniform across the warp
        const float pj = __shfl_sync(kFullMask, prob[qi], jj);
#pragma unroll
        for (int c = 0; c < kChunks; ++c) o[qi][c] = fmaf(pj, vv[c], o[qi][c]);
      }
    }
    __syncthreads();
  }

  T* out = static_cast<T*>(p.out);
#pragma unroll
  for (int qi = 0; qi < kAttentionQPerWarp; ++qi) {
    const int v = warp + kAttentionWarps * qi;
    if (v >= num_q) continue;
    const int64_t row = row_begin + v / p.heads_per_cta;
    const int head = head0 + v % p.heads_per_cta;
    T* dst = out + row * p.out_stride + static_cast<int64_t>(head) * d;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int i = lane + 32 * c;
      if (i < d) StoreFromFloat(dst + i, l_run[qi] > 0.f ? __fdiv_rn(o[qi][c], l_run[qi]) : 0.f);
    }
  }
}

}  // namespace moe::cuda::kernel
