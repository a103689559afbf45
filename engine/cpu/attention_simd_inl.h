// The vectorized attention tile kernel, written once over a lane-traits type V and instantiated
// by attention_avx512.cc and attention_avx2.cc (each compiled for its ISA). Include only from
// those files, after defining V; everything here has internal linkage.
//
// V provides: T (vector), kLanes, Zero(), Set1(f), LoadF32(p, n), LoadBf16(p, n), StoreF32(p,
// v, n), StoreBf16(p, v, n), Fma(a, b, c), Max(a, b), Div(a, b), ReduceAdd(v), ReduceMax(v),
// Exp(v); loads of n < kLanes lanes fill the rest with zeros.
#pragma once

#include <algorithm>
#include <cmath>

#include "engine/cpu/attention.h"

namespace moe::engine::cpu::MOE_SIMD_NS {
namespace {

template <typename V>
inline typename V::T LoadRowChunk(const void* row, DType dtype, int64_t at, int64_t n) {
  if (dtype == DType::kF32) return V::LoadF32(static_cast<const float*>(row) + at, n);
  return V::LoadBf16(static_cast<const uint16_t*>(row) + at, n);
}

template <typename V>
void AttentionTileKernel(const AttentionArgs& a, const AttentionTile& tile,
                         const AttentionScratch& scratch) {
  using T = typename V::T;
  constexpr int L = V::kLanes;
  const int d = a.head_dim;
  const int group = a.num_heads / a.num_kv_heads;
  const int bs = a.cache.block_size;
  const int nq = tile.token_end - tile.token_begin;
  const int rows = nq * group;
  const int64_t dpad = (d + L - 1) / L * L;
  const int chunks = static_cast<int>(dpad / L);
  const int64_t stride = scratch.score_stride;
  float* qbuf = scratch.data;                   // [rows][dpad]
  float* kbuf = qbuf + rows * dpad;             // [dpad]
  float* scores = kbuf + dpad;                  // [rows][stride]
  const int32_t* table = a.block_tables + static_cast<int64_t>(tile.seq) * a.max_blocks_per_seq;
  const int64_t kv_col = static_cast<int64_t>(tile.kv_head) * d;

  int first[kAttentionQueryTile];
  int last[kAttentionQueryTile];
  int jmin = INT32_MAX;
  int jmax = -1;
  for (int qi = 0; qi < nq; ++qi) {
    const int pos = a.positions[tile.token_begin + qi];
    first[qi] = a.sliding_window > 0 ? std::max(0, pos - a.sliding_window + 1) : 0;
    last[qi] = pos;
    jmin = std::min(jmin, first[qi]);
    jmax = std::max(jmax, pos);
    for (int hh = 0; hh < group; ++hh) {
      const int head = tile.kv_head * group + hh;
      const void* qrow = a.q.Row(tile.token_begin + qi);
      float* dst = qbuf + (qi * group + hh) * dpad;
      for (int c = 0; c < chunks; ++c) {
        V::StoreF32(dst + c * L,
                    LoadRowChunk<V>(qrow, a.q.dtype, static_cast<int64_t>(head) * d + c * L,
                                    std::min<int64_t>(L, d - c * L)),
                    L);
      }
    }
  }

  // Scores of every row against keys [jmin, jmax]; a row only uses its own [first, last].
  for (int j = jmin; j <= jmax; ++j) {
    const int64_t slot = static_cast<int64_t>(table[j / bs]) * bs + j % bs;
    const void* krow = a.cache.k.Row(slot);
    for (int c = 0; c < chunks; ++c) {
      V::StoreF32(kbuf + c * L,
                  LoadRowChunk<V>(krow, a.cache.k.dtype, kv_col + c * L,
                                  std::min<int64_t>(L, d - c * L)),
                  L);
    }
    for (int r = 0; r < rows; ++r) {
      const float* q = qbuf + r * dpad;
      T acc = V::Zero();
      for (int c = 0; c < chunks; ++c) {
        acc = V::Fma(V::LoadF32(q + c * L, L), V::LoadF32(kbuf + c * L, L), acc);
      }
      scores[r * stride + j] = V::ReduceAdd(acc) * a.scale;
    }
  }

  // Softmax per row over lane-aligned chunks anchored at position 0.
  for (int r = 0; r < rows; ++r) {
    const int qi = r / group;
    const int f = first[qi];
    const int l = last[qi];
    float* s = scores + r * stride;
    const int c0 = f / L * L;
    T vmax = V::Set1(-INFINITY);
    for (int c = c0; c <= l; c += L) {
      vmax = V::Max(vmax, V::LoadMasked(s + c, c, f, l, -INFINITY));
    }
    const T mx = V::Set1(V::ReduceMax(vmax));
    T vsum = V::Zero();
    for (int c = c0; c <= l; c += L) {
      const T e = V::MaskRange(V::Exp(V::Sub(V::LoadMasked(s + c, c, f, l, 0.f), mx)), c, f, l);
      V::StoreF32(s + c, e, L);
      vsum = V::Add(vsum, e);
    }
    const T denom = V::Set1(V::ReduceAdd(vsum));
    for (int c = c0; c <= l; c += L) V::StoreF32(s + c, V::Div(V::LoadF32(s + c, L), denom), L);
  }

  // o = sum_j p_j v_j, for up to 4 heads of one query at a time and 4 vectors of head_dim.
  for (int qi = 0; qi < nq; ++qi) {
    const int f = first[qi];
    const int l = last[qi];
    const int t = tile.token_begin + qi;
    for (int h0 = 0; h0 < group; h0 += 4) {
      const int nh = std::min(4, group - h0);
      for (int c0 = 0; c0 < chunks; c0 += 4) {
        const int nc = std::min(4, chunks - c0);
        T acc[4][4];
        for (int h = 0; h < 4; ++h) {
          for (int c = 0; c < 4; ++c) acc[h][c] = V::Zero();
        }
        for (int j = f; j <= l; ++j) {
          const int64_t slot = static_cast<int64_t>(table[j / bs]) * bs + j % bs;
          const void* vrow = a.cache.v.Row(slot);
          T v[4];
          for (int c = 0; c < nc; ++c) {
            v[c] = LoadRowChunk<V>(vrow, a.cache.v.dtype, kv_col + (c0 + c) * L,
                                   std::min<int64_t>(L, d - (c0 + c) * L));
          }
          for (int h = 0; h < nh; ++h) {
            const T p = V::Set1(scores[((qi * group) + h0 + h) * stride + j]);
            for (int c = 0; c < nc; ++c) acc[h][c] = V::Fma(p, v[c], acc[h][c]);
          }
        }
        for (int h = 0; h < nh; ++h) {
          const int head = tile.kv_head * group + h0 + h;
          for (int c = 0; c < nc; ++c) {
            const int64_t col = static_cast<int64_t>(head) * d + (c0 + c) * L;
            const int64_t n = std::min<int64_t>(L, d - (c0 + c) * L);
            if (a.out.dtype == DType::kF32) {
              V::StoreF32(a.out.RowAs<float>(t) + col, acc[h][c], n);
            } else {
              V::StoreBf16(a.out.RowAs<uint16_t>(t) + col, acc[h][c], n);
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace moe::engine::cpu::MOE_SIMD_NS
