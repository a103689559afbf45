// Ragged, paged, causal attention (prefill chunks, decodes and speculative verification in one
// batch): the semantics of engine::AttentionArgs and the CPU reference. Sequence s owns query
// rows [query_start[s], query_start[s + 1]); the row at position p attends to the sequence's
// cached keys [max(0, p - window + 1), p] read through its block table (KvWrite runs first).
//
// Algorithm: online softmax (FlashAttention-style) on CUDA cores, f32 throughout. A CTA takes a
// tile of consecutive query rows of one sequence and a group of q heads sharing one KV head
// (GQA), at most kAttentionMaxQueries (row, head) query vectors; it streams the keys in blocks of
// kAttentionKeyBlock positions through shared memory, and each query vector folds every block
// that intersects its own key range into its running (max, sum, output).
//
// Reduction structure (DESIGN.md §4): key blocks are aligned to absolute positions
// [32b, 32b + 32) from position 0 and folded in ascending order; within a block the score max and
// sum are a fixed warp butterfly and the output accumulation is sequential over the block's valid
// keys. A query vector's arithmetic depends only on its own q, its own key range and the cached
// K/V - not on which other rows share the tile, the tile shape, the batch or the chunking - so
// the kernel is batch invariant in every mode (there is no split-KV).
//
// Performance notes: prefill shares each K/V block across up to 16 query vectors; decode has
// one CTA per (sequence, KV head, head group) and walks the whole context serially (no split-KV
// yet: a long-context, small-batch decode uses few SMs). Tensor cores are not used.
//
// Host-only header.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace moe::cuda {

inline constexpr int kAttentionMaxHeadDim = 256;
inline constexpr int kAttentionMaxQueries = 16;  // (row, head) query vectors per CTA
inline constexpr int kAttentionKeyBlock = 32;    // the fixed reduction block (keys per step)

struct PagedAttentionProblem {
  int num_tokens = 0;  // T (query rows) >= 0
  int num_seqs = 0;    // S >= 0
  int num_heads = 0;   // q heads, a multiple of num_kv_heads
  int num_kv_heads = 0;
  int head_dim = 0;     // in [1, kAttentionMaxHeadDim]
  int block_size = 16;  // cache positions per block
  int max_blocks_per_seq = 0;
  DType dtype = DType::kBF16;  // of q, the cache and out: kF32 or kBF16
  int64_t q_stride = 0;        // elements; 0 = num_heads * head_dim
  int64_t cache_stride = 0;    // elements per cache slot row; 0 = num_kv_heads * head_dim
  int64_t cache_slots = 0;     // rows of the K and V caches (bound of slot indices)
  int64_t out_stride = 0;      // elements; 0 = num_heads * head_dim
  float scale = 1.f;
  int sliding_window = 0;  // 0 = none
  int num_sms = 0;         // SMs to fill (decode head split); 0 = 132
};

struct PagedAttentionBuffers {
  const void* q = nullptr;                // [T, q_stride]
  const void* k_cache = nullptr;          // [cache_slots, cache_stride]
  const void* v_cache = nullptr;          // [cache_slots, cache_stride]
  const int32_t* query_start = nullptr;   // [S + 1]
  const int32_t* positions = nullptr;     // [T]
  const int32_t* block_tables = nullptr;  // [S, max_blocks_per_seq]
  void* out = nullptr;                    // [T, out_stride]
};

bool PagedAttentionCanImplement(const PagedAttentionProblem& problem);

// The per-sequence tile prefix: (S + 1) int32, 256-byte rounded.
size_t PagedAttentionWorkspaceSize(const PagedAttentionProblem& problem);

// Enqueues two launches (tile prefix, attention). Block ids outside the cache, or keys past the
// block table, read as zero keys and values (a corrupt table cannot fault the device).
cudaError_t PagedAttention(const PagedAttentionProblem& problem,
                           const PagedAttentionBuffers& buffers, void* workspace,
                           size_t workspace_bytes, cudaStream_t stream);

}  // namespace moe::cuda
