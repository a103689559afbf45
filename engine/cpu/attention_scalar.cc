// Portable attention tiles: the reference's arithmetic (sequential dots, std::exp, sequential
// denominator), so this path matches the naive reference bit for bit.
#include <algorithm>
#include <cmath>

#include "core/bf16.h"
#include "engine/cpu/attention.h"

namespace moe::engine::cpu {
namespace {

float Elem(const void* row, DType dtype, int64_t i) {
  return dtype == DType::kF32 ? static_cast<const float*>(row)[i]
                              : Bf16BitsToFloat(static_cast<const uint16_t*>(row)[i]);
}

}  // namespace

int64_t AttentionScoreStride(int max_context) {
  return (static_cast<int64_t>(max_context) + 16 + 15) / 16 * 16;
}

int64_t AttentionScratchFloats(int max_context, int group, int head_dim) {
  // The vector kernels: key slots [keys] (int64), lane ranges [2][rpad], qT [head_dim][rpad],
  // 8 keys [8][dpad], scores [keys][rpad]; the scalar kernel needs less.
  const int64_t rpad = (static_cast<int64_t>(kAttentionQueryTile) * group + 15) / 16 * 16;
  const int64_t dpad = (head_dim + 15) / 16 * 16;
  const int64_t keys = AttentionScoreStride(max_context);
  return 2 * keys /* int64 slots */ + 2 * rpad + head_dim * rpad + 8 * dpad + keys * rpad + 64;
}

namespace internal {

void AttentionScalar(const AttentionArgs& a, const AttentionTile& tile,
                     const AttentionScratch& scratch) {
  const int d = a.head_dim;
  const int group = a.num_heads / a.num_kv_heads;
  const int bs = a.cache.block_size;
  const int32_t* table = a.block_tables + static_cast<int64_t>(tile.seq) * a.max_blocks_per_seq;
  const int64_t kv_col = static_cast<int64_t>(tile.kv_head) * d;
  float* scores = scratch.data;
  float* o = scores + scratch.score_stride;
  for (int t = tile.token_begin; t < tile.token_end; ++t) {
    const int pos = a.positions[t];
    const int first = a.sliding_window > 0 ? std::max(0, pos - a.sliding_window + 1) : 0;
    for (int hh = 0; hh < group; ++hh) {
      const int head = tile.kv_head * group + hh;
      const void* q = a.q.Row(t);
      float max_score = -INFINITY;
      for (int j = first; j <= pos; ++j) {
        const int64_t slot = static_cast<int64_t>(table[j / bs]) * bs + j % bs;
        const void* k = a.cache.k.Row(slot);
        float dot = 0.f;
        for (int i = 0; i < d; ++i) {
          dot += Elem(q, a.q.dtype, static_cast<int64_t>(head) * d + i) *
                 Elem(k, a.cache.k.dtype, kv_col + i);
        }
        scores[j] = dot * a.scale;
        max_score = std::max(max_score, scores[j]);
      }
      float denom = 0.f;
      for (int j = first; j <= pos; ++j) {
        scores[j] = std::exp(scores[j] - max_score);
        denom += scores[j];
      }
      std::fill(o, o + d, 0.f);
      for (int j = first; j <= pos; ++j) {
        const int64_t slot = static_cast<int64_t>(table[j / bs]) * bs + j % bs;
        const void* v = a.cache.v.Row(slot);
        const float p = scores[j] / denom;
        for (int i = 0; i < d; ++i) o[i] += p * Elem(v, a.cache.v.dtype, kv_col + i);
      }
      for (int i = 0; i < d; ++i) {
        const int64_t col = static_cast<int64_t>(head) * d + i;
        if (a.out.dtype == DType::kF32) {
          a.out.RowAs<float>(t)[col] = o[i];
        } else {
          a.out.RowAs<uint16_t>(t)[col] = FloatToBf16Bits(o[i]);
        }
      }
    }
  }
}

}  // namespace internal

AttentionKernel AttentionKernelFor(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512Bf16:
      return internal::AttentionAvx512;
    case CpuIsa::kAvx2:
      return internal::AttentionAvx2;
    default:
      return internal::AttentionScalar;
  }
}

}  // namespace moe::engine::cpu
