// The vectorized attention tile kernel, written once over a lane-traits type V and instantiated
// by attention_avx512.cc and attention_avx2.cc (each compiled for its ISA). Include only from
// those files, after defining V; everything here has internal linkage.
//
// Layout: the tile's rows r = (query, head of the kv group) run along the vector lanes. q is
// transposed once per tile (qT[i][r]), so a score vector for key j is sum_i k_j[i] * qT[i][:]:
// head_dim FMAs give the scores of all rows, with no horizontal sums. Scores are kept as
// sT[j][r]; softmax then works on whole vectors, and o[r] = sum_j p[j][r] v_j runs per row.
//
// Per lane everything is a fixed sequence that depends only on the row: its dot products are
// sequential FMAs over i = 0..head_dim-1; its max and denominator run over j in order with lanes
// outside [first, last] contributing -inf / +0 (which change nothing); its output sums
// j = first..last in order. Hence the batch invariance stated in attention.h.
//
// V provides: T (vector), M (lane mask), kLanes, Zero(), Set1(f), Load(p) (aligned F32),
// Store(p, v), LoadF32(p, n), LoadBf16(p, n), StoreF32(p, v, n), StoreBf16(p, v, n), Fma(a, b,
// c), Mul, Sub, Add, Max, Div, Exp, InRange(first, last, j) (lanes with first <= j <= last),
// Select(m, if_false, if_true); loads of n < kLanes lanes fill the rest with zeros.
#pragma once

#include <algorithm>
#include <cmath>

#include "engine/cpu/attention.h"
#include "engine/cpu/kernel_util.h"

namespace moe::engine::cpu::MOE_SIMD_NS {
namespace {

template <typename V>
inline typename V::T LoadRowChunk(const void* row, DType dtype, int64_t at, int64_t n) {
  if (dtype == DType::kF32) return V::LoadF32(static_cast<const float*>(row) + at, n);
  return V::LoadBf16(static_cast<const uint16_t*>(row) + at, n);
}

// Prefetches the bytes [at, at + n) of a row (n <= 512).
inline void PrefetchRow(const void* row, int64_t at_bytes, int64_t n_bytes) {
  const char* p = static_cast<const char*>(row) + at_bytes;
  for (int64_t o = 0; o < n_bytes; o += 64) __builtin_prefetch(p + o, 0, 3);
}

inline float RowElem(const void* row, DType dtype, int64_t i) {
  if (dtype == DType::kF32) return static_cast<const float*>(row)[i];
  return Bf16BitsToFloat(static_cast<const uint16_t*>(row)[i]);
}

constexpr int kKeyGroup = 8;  // keys whose dot products are in flight together

// One query's output for NH heads x NC vectors of head_dim: acc stays in registers.
template <typename SlotOf>
struct PvArgsT {
  const AttentionArgs* a;
  SlotOf slot_of;
  const float* p;  // p of (key jmin + i, first head) at p[i * rpad]
  int rpad;
  int jmin;
  int first;
  int last;
  int token;
  int head0;
  int64_t kv_col;
  int chunk0;
};

template <typename V, int NH, int NC, typename Args>
void PvBlockImpl(const Args& pv) {
  using T = typename V::T;
  constexpr int L = V::kLanes;
  const AttentionArgs& a = *pv.a;
  const int d = a.head_dim;
  T acc[NH][NC];
  for (int h = 0; h < NH; ++h) {
    for (int c = 0; c < NC; ++c) acc[h][c] = V::Zero();
  }
  int64_t n[NC];
  for (int c = 0; c < NC; ++c) n[c] = std::min<int64_t>(L, d - (pv.chunk0 + c) * L);
  const bool full = n[NC - 1] == L;
  const bool bf16 = a.cache.v.dtype == DType::kBF16;
  const int64_t esize = ActElementSize(a.cache.v.dtype);
  const int64_t row_bytes = a.cache.v.row_stride * esize;
  const char* base = static_cast<const char*>(a.cache.v.data) +
                     (pv.kv_col + static_cast<int64_t>(pv.chunk0) * L) * esize;
  const int64_t v_bytes = std::min<int64_t>(NC * L, d - pv.chunk0 * L) * esize;
  constexpr int kAhead = 6;
  const float* p = pv.p + static_cast<int64_t>(pv.first - pv.jmin) * pv.rpad;
  for (int j = pv.first; j <= pv.last; ++j, p += pv.rpad) {
    if (j + kAhead <= pv.last) PrefetchRow(base + pv.slot_of(j + kAhead) * row_bytes, 0, v_bytes);
    const char* vrow = base + pv.slot_of(j) * row_bytes;
    T vv[NC];
    if (full && bf16) {
      for (int c = 0; c < NC; ++c)
        vv[c] = V::LoadBf16Full(reinterpret_cast<const uint16_t*>(vrow) + c * L);
    } else if (full) {
      for (int c = 0; c < NC; ++c)
        vv[c] = V::LoadF32Full(reinterpret_cast<const float*>(vrow) + c * L);
    } else {
      for (int c = 0; c < NC; ++c) {
        vv[c] = bf16 ? V::LoadBf16(reinterpret_cast<const uint16_t*>(vrow) + c * L, n[c])
                     : V::LoadF32(reinterpret_cast<const float*>(vrow) + c * L, n[c]);
      }
    }
    for (int h = 0; h < NH; ++h) {
      const T ph = V::Set1(p[h]);
      for (int c = 0; c < NC; ++c) acc[h][c] = V::Fma(ph, vv[c], acc[h][c]);
    }
  }
  for (int h = 0; h < NH; ++h) {
    for (int c = 0; c < NC; ++c) {
      const int64_t col = static_cast<int64_t>(pv.head0 + h) * d + (pv.chunk0 + c) * L;
      if (a.out.dtype == DType::kF32) {
        V::StoreF32(ActRow<float>(a.out, pv.token) + col, acc[h][c], n[c]);
      } else {
        V::StoreBf16(ActRow<uint16_t>(a.out, pv.token) + col, acc[h][c], n[c]);
      }
    }
  }
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
  const int nvec = (rows + L - 1) / L;
  const int rpad = nvec * L;
  const int64_t dpad = (d + 15) / 16 * 16;
  const int32_t* table = a.block_tables + static_cast<int64_t>(tile.seq) * a.max_blocks_per_seq;
  const int64_t kv_col = static_cast<int64_t>(tile.kv_head) * d;

  // Scratch: cache slots of keys [0, max_context), lane ranges, qT [d][rpad],
  // kbuf [kKeyGroup][dpad], sT [keys][rpad].
  int64_t* slots = reinterpret_cast<int64_t*>(scratch.data);
  int32_t* lane_first = reinterpret_cast<int32_t*>(slots + scratch.score_stride);
  int32_t* lane_last = lane_first + rpad;
  float* qt = reinterpret_cast<float*>(lane_last + rpad);
  float* kbuf = qt + static_cast<int64_t>(d) * rpad;
  float* st = kbuf + kKeyGroup * dpad;

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
  }
  // Slot of each key (the division by the block size once per key, not per use).
  for (int j = jmin; j <= jmax; ++j) {
    slots[j - jmin] = static_cast<int64_t>(table[j / bs]) * bs + j % bs;
  }
  const int64_t* key_slot = slots - jmin;  // key_slot[j]
  auto slot_of = [key_slot](int j) { return key_slot[j]; };
  using PvArgs = PvArgsT<decltype(slot_of)>;
  for (int r = 0; r < rpad; ++r) {
    lane_first[r] = r < rows ? first[r / group] : 1;
    lane_last[r] = r < rows ? last[r / group] : 0;  // empty range: padding lanes
  }
  for (int r = 0; r < rpad; ++r) {
    const int qi = r / group;
    const int head = tile.kv_head * group + r % group;
    const void* qrow = r < rows ? ActRow(a.q, tile.token_begin + qi) : nullptr;
    for (int i = 0; i < d; ++i) {
      qt[static_cast<int64_t>(i) * rpad + r] =
          r < rows ? RowElem(qrow, a.q.dtype, static_cast<int64_t>(head) * d + i) : 0.f;
    }
  }
  const int nkeys = jmax - jmin + 1;
  const T scale = V::Set1(a.scale);

  // Scores: sT[j - jmin][r] = (q_r . k_j) * scale.
  const int64_t k_at = kv_col * static_cast<int64_t>(a.cache.k.ElementSize());
  const int64_t row_bytes = static_cast<int64_t>(d) * a.cache.k.ElementSize();
  for (int j0 = 0; j0 < nkeys; j0 += kKeyGroup) {
    const int nk = std::min(kKeyGroup, nkeys - j0);
    // Keys live in scattered cache blocks: fetch the next group while this one computes.
    for (int kk = 0; kk < kKeyGroup && j0 + kKeyGroup + kk < nkeys; ++kk) {
      PrefetchRow(ActRow(a.cache.k, slot_of(jmin + j0 + kKeyGroup + kk)), k_at, row_bytes);
    }
    for (int kk = 0; kk < nk; ++kk) {
      const void* krow = ActRow(a.cache.k, slot_of(jmin + j0 + kk));
      for (int64_t c = 0; c < dpad; c += L) {
        V::Store(kbuf + kk * dpad + c,
                 LoadRowChunk<V>(krow, a.cache.k.dtype, kv_col + c, std::min<int64_t>(L, d - c)));
      }
    }
    for (int v = 0; v < nvec; ++v) {
      T acc[kKeyGroup];
      for (int kk = 0; kk < kKeyGroup; ++kk) acc[kk] = V::Zero();
      const float* q = qt + v * L;
      if (nk == kKeyGroup) {
        for (int i = 0; i < d; ++i) {
          const T qv = V::Load(q + static_cast<int64_t>(i) * rpad);
          for (int kk = 0; kk < kKeyGroup; ++kk) {
            acc[kk] = V::Fma(V::Set1(kbuf[kk * dpad + i]), qv, acc[kk]);
          }
        }
      } else {
        for (int i = 0; i < d; ++i) {
          const T qv = V::Load(q + static_cast<int64_t>(i) * rpad);
          for (int kk = 0; kk < nk; ++kk) {
            acc[kk] = V::Fma(V::Set1(kbuf[kk * dpad + i]), qv, acc[kk]);
          }
        }
      }
      for (int kk = 0; kk < nk; ++kk) {
        V::Store(st + static_cast<int64_t>(j0 + kk) * rpad + v * L, V::Mul(acc[kk], scale));
      }
    }
  }

  // Softmax along j for all lanes at once; p = e / denom stored back into sT.
  for (int v = 0; v < nvec; ++v) {
    const int32_t* lf = lane_first + v * L;
    const int32_t* ll = lane_last + v * L;
    T vmax = V::Set1(-INFINITY);
    for (int j = 0; j < nkeys; ++j) {
      const T s = V::Load(st + static_cast<int64_t>(j) * rpad + v * L);
      vmax = V::Select(V::InRange(lf, ll, jmin + j), vmax, V::Max(vmax, s));
    }
    T vsum = V::Zero();
    for (int j = 0; j < nkeys; ++j) {
      float* sp = st + static_cast<int64_t>(j) * rpad + v * L;
      const T e =
          V::Select(V::InRange(lf, ll, jmin + j), V::Zero(), V::Exp(V::Sub(V::Load(sp), vmax)));
      V::Store(sp, e);
      vsum = V::Add(vsum, e);
    }
    for (int j = 0; j < nkeys; ++j) {
      float* sp = st + static_cast<int64_t>(j) * rpad + v * L;
      V::Store(sp, V::Div(V::Load(sp), vsum));
    }
  }

  // o = sum_j p_j v_j over the query's own range, up to 4 heads x 4 vectors of head_dim at once.
  const int chunks = static_cast<int>((d + L - 1) / L);
  for (int qi = 0; qi < nq; ++qi) {
    for (int h0 = 0; h0 < group; h0 += 4) {
      const int nh = std::min(4, group - h0);
      for (int c0 = 0; c0 < chunks; c0 += 4) {
        const int nc = std::min(4, chunks - c0);
        PvArgs pv{&a,
                  slot_of,
                  st + qi * group + h0,
                  rpad,
                  jmin,
                  first[qi],
                  last[qi],
                  tile.token_begin + qi,
                  tile.kv_head * group + h0,
                  kv_col,
                  c0};
        // clang-format off
        switch (nh * 8 + nc) {
#define MOE_PV_CASE(NH, NC)     \
  case NH * 8 + NC:             \
    PvBlockImpl<V, NH, NC>(pv); \
    break;
          MOE_PV_CASE(1, 1) MOE_PV_CASE(1, 2) MOE_PV_CASE(1, 3) MOE_PV_CASE(1, 4)
          MOE_PV_CASE(2, 1) MOE_PV_CASE(2, 2) MOE_PV_CASE(2, 3) MOE_PV_CASE(2, 4)
          MOE_PV_CASE(3, 1) MOE_PV_CASE(3, 2) MOE_PV_CASE(3, 3) MOE_PV_CASE(3, 4)
          MOE_PV_CASE(4, 1) MOE_PV_CASE(4, 2) MOE_PV_CASE(4, 3) MOE_PV_CASE(4, 4)
#undef MOE_PV_CASE
          default: break;
        }
        // clang-format on
      }
    }
  }
}

}  // namespace
}  // namespace moe::engine::cpu::MOE_SIMD_NS
