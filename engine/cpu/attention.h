// Ragged paged causal attention kernels (Backend::Attention). The backend cuts a call into tiles
// of (sequence, kv head, up to kAttentionQueryTile consecutive query rows of that sequence) and
// runs them on any thread in any order.
//
// Batch invariance (DESIGN.md §4): a query's output depends only on its q row, its position and
// its sequence's cached keys/values. Per (query, head): scores s_j = (q · k_j) * scale for
// j in [first, pos], each dot one fixed-order reduction over head_dim; max; e_j = exp(s_j - max);
// denominator summed in a fixed lane structure anchored at position 0; p_j = e_j / denom;
// o = sum_j p_j v_j in order j = first..pos. Nothing depends on the tile, the other rows, the
// chunk the query arrived in, or the thread.
#pragma once

#include <cstdint>

#include "engine/backend.h"
#include "engine/cpu/cpu_features.h"

namespace moe::engine::cpu {

inline constexpr int kAttentionQueryTile = 4;

struct AttentionTile {
  int seq = 0;
  int kv_head = 0;
  int token_begin = 0;  // query rows [token_begin, token_end), all of sequence `seq`
  int token_end = 0;
};

// Per-thread scratch of one attention kernel call.
struct AttentionScratch {
  float* data = nullptr;     // AttentionScratchFloats() floats
  int64_t score_stride = 0;  // floats per score row (>= max_context + 16, multiple of 16)
};

int64_t AttentionScoreStride(int max_context);
int64_t AttentionScratchFloats(int max_context, int group, int head_dim);

using AttentionKernel = void (*)(const AttentionArgs& args, const AttentionTile& tile,
                                 const AttentionScratch& scratch);

AttentionKernel AttentionKernelFor(CpuIsa isa);

namespace internal {
void AttentionScalar(const AttentionArgs& args, const AttentionTile& tile,
                     const AttentionScratch& scratch);
void AttentionAvx2(const AttentionArgs& args, const AttentionTile& tile,
                   const AttentionScratch& scratch);
void AttentionAvx512(const AttentionArgs& args, const AttentionTile& tile,
                     const AttentionScratch& scratch);
}  // namespace internal

}  // namespace moe::engine::cpu
