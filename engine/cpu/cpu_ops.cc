#include "engine/cpu/cpu_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/cpu/element.h"

namespace moe::engine::cpu::ops {
namespace {

// FloatToBf16Bits / RoundToBf16 without a branch, so that loops over a row vectorize; the same
// results bit for bit (round to nearest even; NaN made quiet).
inline uint32_t Bf16RoundedBits(float f) {
  const uint32_t u = FloatBits(f);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  const uint32_t quiet_nan = (u & 0xffff0000u) | 0x00400000u;
  return (u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded;
}
inline float RoundBf16(float f) { return BitsToFloat(Bf16RoundedBits(f)); }
inline uint16_t Bf16Bits(float f) { return static_cast<uint16_t>(Bf16RoundedBits(f) >> 16); }

// Row r of `v` as floats (exact widening).
void LoadRowF(const TensorView& v, int64_t r, float* dst) {
  switch (v.dtype) {
    case DType::kF32:
      std::memcpy(dst, v.Row(r), static_cast<size_t>(v.cols) * 4);
      return;
    case DType::kBF16: {
      const uint16_t* src = v.RowAs<uint16_t>(r);
      for (int64_t c = 0; c < v.cols; ++c) dst[c] = Bf16BitsToFloat(src[c]);
      return;
    }
    default:
      DispatchFloat(v.dtype, [&](auto tag) {
        using T = decltype(tag);
        const T* src = v.RowAs<T>(r);
        for (int64_t c = 0; c < v.cols; ++c) dst[c] = Load(src + c);
      });
  }
}

// Stores floats into row r of `v`, rounding to its dtype.
void StoreRowF(const TensorView& v, int64_t r, const float* src) {
  switch (v.dtype) {
    case DType::kF32:
      std::memcpy(v.Row(r), src, static_cast<size_t>(v.cols) * 4);
      return;
    case DType::kBF16: {
      uint16_t* dst = v.RowAs<uint16_t>(r);
      for (int64_t c = 0; c < v.cols; ++c) dst[c] = Bf16Bits(src[c]);
      return;
    }
    default:
      DispatchFloat(v.dtype, [&](auto tag) {
        using T = decltype(tag);
        T* dst = v.RowAs<T>(r);
        for (int64_t c = 0; c < v.cols; ++c) Store(dst + c, src[c]);
      });
  }
}

inline float RoundTo(DType dtype, float v) {
  switch (dtype) {
    case DType::kF32:
      return v;
    case DType::kBF16:
      return RoundBf16(v);
    default:
      return DispatchFloat(dtype, [&](auto tag) { return RoundAs<decltype(tag)>(v); });
  }
}

// sum_i v_r[i]^2 of `count` (<= kNormBatch) vectors, each summed sequentially in i exactly as
// ref::NormalizeInPlace does; the vectors' chains are interleaved so that the core runs them in
// parallel (a single sequential sum is bound by the add latency).
constexpr int kNormBatch = 8;

template <int N>
void SumSquaresN(float* const* v, int64_t n, float* sums) {
  float s[N];
  for (int r = 0; r < N; ++r) s[r] = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    for (int r = 0; r < N; ++r) s[r] += v[r][i] * v[r][i];
  }
  for (int r = 0; r < N; ++r) sums[r] = s[r];
}

void SumSquares(float* const* v, int count, int64_t n, float* sums) {
  switch (count) {
    case 1:
      SumSquaresN<1>(v, n, sums);
      break;
    case 2:
      SumSquaresN<2>(v, n, sums);
      break;
    case 3:
      SumSquaresN<3>(v, n, sums);
      break;
    case 4:
      SumSquaresN<4>(v, n, sums);
      break;
    case 5:
      SumSquaresN<5>(v, n, sums);
      break;
    case 6:
      SumSquaresN<6>(v, n, sums);
      break;
    case 7:
      SumSquaresN<7>(v, n, sums);
      break;
    default:
      SumSquaresN<8>(v, n, sums);
      break;
  }
}

// HF RMSNorm of v[0, n) in place given sum_i v[i]^2, rounding where HF does (as
// ref::NormalizeInPlace).
void NormalizeWithSum(float* v, int64_t n, float sum_sq, const float* weight, float eps,
                      DType dtype) {
  const float inv = 1.f / std::sqrt(sum_sq / static_cast<float>(n) + eps);
  if (dtype == DType::kF32) {
    for (int64_t i = 0; i < n; ++i) v[i] = weight[i] * (v[i] * inv);
  } else if (dtype == DType::kBF16) {
    for (int64_t i = 0; i < n; ++i) v[i] = RoundBf16(weight[i] * RoundBf16(v[i] * inv));
  } else {
    for (int64_t i = 0; i < n; ++i) v[i] = RoundTo(dtype, weight[i] * RoundTo(dtype, v[i] * inv));
  }
}

// Normalises `count` vectors of n (each its own sum), batched for SumSquares.
void NormalizeMany(float* const* v, int count, int64_t n, const float* weight, float eps,
                   DType dtype) {
  for (int r0 = 0; r0 < count; r0 += kNormBatch) {
    const int m = std::min(kNormBatch, count - r0);
    float sums[kNormBatch];
    SumSquares(v + r0, m, n, sums);
    for (int r = 0; r < m; ++r) NormalizeWithSum(v[r0 + r], n, sums[r], weight, eps, dtype);
  }
}

}  // namespace

void ConvertRow(const TensorView& src, int64_t src_row, const TensorView& dst, int64_t dst_row) {
  if (src.dtype == dst.dtype) {
    std::memcpy(dst.Row(dst_row), src.Row(src_row),
                static_cast<size_t>(src.cols) * src.ElementSize());
    return;
  }
  if (src.dtype == DType::kBF16 && dst.dtype == DType::kF32) {
    const uint16_t* s = src.RowAs<uint16_t>(src_row);
    float* d = dst.RowAs<float>(dst_row);
    for (int64_t c = 0; c < src.cols; ++c) d[c] = Bf16BitsToFloat(s[c]);
    return;
  }
  if (src.dtype == DType::kF32 && dst.dtype == DType::kBF16) {
    const float* s = src.RowAs<float>(src_row);
    uint16_t* d = dst.RowAs<uint16_t>(dst_row);
    for (int64_t c = 0; c < src.cols; ++c) d[c] = Bf16Bits(s[c]);
    return;
  }
  DispatchFloat(src.dtype, [&](auto in_tag) {
    using TI = decltype(in_tag);
    const TI* s = src.RowAs<TI>(src_row);
    DispatchFloat(dst.dtype, [&](auto out_tag) {
      using TO = decltype(out_tag);
      TO* d = dst.RowAs<TO>(dst_row);
      for (int64_t c = 0; c < src.cols; ++c) Store(d + c, Load(s + c));
    });
  });
}

void RmsNormRows(const RmsNormArgs& a, int64_t begin, int64_t end, float* scratch) {
  const int64_t h = a.x.cols;
  float* add = scratch;
  float* rows[kNormBatch];
  for (int r = 0; r < kNormBatch; ++r) rows[r] = scratch + (r + 1) * h;
  for (int64_t t0 = begin; t0 < end; t0 += kNormBatch) {
    const int m = static_cast<int>(std::min<int64_t>(kNormBatch, end - t0));
    for (int r = 0; r < m; ++r) {
      float* v = rows[r];
      LoadRowF(a.x, t0 + r, v);
      if (a.add.data != nullptr) {
        LoadRowF(a.add, t0 + r, add);
        if (a.x.dtype == DType::kF32) {
          for (int64_t i = 0; i < h; ++i) v[i] = v[i] + add[i];
        } else if (a.x.dtype == DType::kBF16) {
          for (int64_t i = 0; i < h; ++i) v[i] = RoundBf16(v[i] + add[i]);
        } else {
          for (int64_t i = 0; i < h; ++i) v[i] = RoundTo(a.x.dtype, v[i] + add[i]);
        }
        StoreRowF(a.x, t0 + r, v);
      }
    }
    NormalizeMany(rows, m, h, a.weight, a.eps, a.out.dtype);
    for (int r = 0; r < m; ++r) StoreRowF(a.out, t0 + r, rows[r]);
  }
}

void RopeTable::Reserve(int max_positions, int head_dim) {
  max_positions_ = max_positions;
  table_.assign(static_cast<size_t>(max_positions) * std::max(head_dim, 2), 0.f);
  inv_freq_.reserve(std::max(head_dim / 2, 1));
  head_dim_ = 0;
}

void RopeTable::Prepare(int head_dim, float theta) {
  if (head_dim == head_dim_ && theta == theta_) return;
  const int half = head_dim / 2;
  if (static_cast<size_t>(max_positions_) * half * 2 > table_.size()) {
    head_dim_ = 0;  // no room: Row() returns null and callers compute directly
    return;
  }
  inv_freq_.resize(half);
  // As ref::RopeInverseFrequencies (float exponent, double pow, float reciprocal).
  for (int i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    const float base_pow =
        static_cast<float>(std::pow(static_cast<double>(theta), static_cast<double>(exponent)));
    inv_freq_[i] = 1.0f / base_pow;
  }
  for (int p = 0; p < max_positions_; ++p) {
    float* row = table_.data() + static_cast<size_t>(p) * half * 2;
    for (int i = 0; i < half; ++i) {
      const float angle = static_cast<float>(p) * inv_freq_[i];
      row[2 * i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      row[2 * i + 1] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  }
  head_dim_ = head_dim;
  theta_ = theta;
}

const float* RopeTable::Row(int32_t position) const {
  if (head_dim_ == 0 || position < 0 || position >= max_positions_) return nullptr;
  return table_.data() + static_cast<size_t>(position) * (head_dim_ / 2) * 2;
}

void QkNormRopeRows(const QkNormRopeArgs& a, const RopeTable& rope, int64_t begin, int64_t end,
                    float* scratch) {
  constexpr int kMaxHeads = 64;
  const int d = a.head_dim;
  const int half = d / 2;
  float* v = scratch;
  float* cs_local = scratch + std::max(a.q.cols, a.k.cols);  // [head_dim] when not tabled
  auto process = [&](const TensorView& m, int num_heads, const float* norm_weight, int64_t t,
                     const float* cs) {
    LoadRowF(m, t, v);
    if (a.norm == model::QkNormKind::kPerHead) {
      float* heads[kMaxHeads];
      for (int h0 = 0; h0 < num_heads; h0 += kMaxHeads) {
        const int nh = std::min(kMaxHeads, num_heads - h0);
        for (int h = 0; h < nh; ++h) heads[h] = v + (h0 + h) * d;
        NormalizeMany(heads, nh, d, norm_weight, a.eps, m.dtype);
      }
    } else if (a.norm == model::QkNormKind::kFull) {
      float* whole[1] = {v};
      NormalizeMany(whole, 1, static_cast<int64_t>(num_heads) * d, norm_weight, a.eps, m.dtype);
    }
    for (int h = 0; h < num_heads; ++h) {
      float* x = v + h * d;
      for (int i = 0; i < half; ++i) {
        const float c = cs[2 * i];
        const float s = cs[2 * i + 1];
        const float x1 = x[i];
        const float x2 = x[i + half];
        x[i] = x1 * c - x2 * s;
        x[i + half] = x2 * c + x1 * s;
      }
    }
    StoreRowF(m, t, v);
  };
  for (int64_t t = begin; t < end; ++t) {
    const float* cs =
        rope.head_dim() == d && rope.theta() == a.rope_theta ? rope.Row(a.positions[t]) : nullptr;
    if (cs == nullptr) {
      for (int i = 0; i < half; ++i) {
        const float exponent = static_cast<float>(2 * i) / static_cast<float>(d);
        const float inv = 1.0f / static_cast<float>(std::pow(static_cast<double>(a.rope_theta),
                                                             static_cast<double>(exponent)));
        const float angle = static_cast<float>(a.positions[t]) * inv;
        cs_local[2 * i] = static_cast<float>(std::cos(static_cast<double>(angle)));
        cs_local[2 * i + 1] = static_cast<float>(std::sin(static_cast<double>(angle)));
      }
      cs = cs_local;
    }
    process(a.q, a.num_heads, a.q_norm_weight, t, cs);
    process(a.k, a.num_kv_heads, a.k_norm_weight, t, cs);
  }
}

void RouterTopKRows(const RouterTopKArgs& a, int64_t begin, int64_t end, float* scratch) {
  const int e_count = a.num_experts;
  const int k = a.top_k;
  float* logits = scratch;
  float* probs = scratch + e_count;
  float* taken = scratch + 2 * e_count;
  int order[256];
  MOE_CHECK(k <= 256) << "top_k above 256";
  for (int64_t t = begin; t < end; ++t) {
    LoadRowF(a.logits, t, logits);
    // The first k of a stable descending sort by logit (ties to the lower expert id): k
    // selection passes, each taking the first maximum among the experts not yet taken.
    for (int e = 0; e < e_count; ++e) taken[e] = 0.f;
    for (int j = 0; j < k; ++j) {
      int best = -1;
      for (int e = 0; e < e_count; ++e) {
        if (taken[e] != 0.f) continue;
        if (best < 0 || logits[e] > logits[best]) best = e;
      }
      order[j] = best;
      taken[best] = 1.f;
    }
    int32_t* ids = a.expert_ids + t * k;
    float* weights = a.expert_weights + t * k;
    const float max_logit = logits[order[0]];
    if (a.kind == model::RouterKind::kTopKSoftmax) {
      float sum = 0.f;
      for (int j = 0; j < k; ++j) sum += std::exp(logits[order[j]] - max_logit);
      for (int j = 0; j < k; ++j) {
        ids[j] = order[j];
        weights[j] = std::exp(logits[order[j]] - max_logit) / sum;
      }
      continue;
    }
    float sum = 0.f;
    for (int e = 0; e < e_count; ++e) {
      probs[e] = std::exp(logits[e] - max_logit);
      sum += probs[e];
    }
    for (int e = 0; e < e_count; ++e) probs[e] /= sum;
    int kept = k;
    if (a.top_p > 0.f) {
      float mass = 0.f;
      kept = 0;
      while (kept < k) {
        mass += probs[order[kept]];
        ++kept;
        if (mass >= a.top_p) break;
      }
    }
    float kept_sum = 0.f;
    for (int j = 0; j < kept; ++j) kept_sum += probs[order[j]];
    for (int j = 0; j < k; ++j) {
      if (j < kept) {
        ids[j] = order[j];
        weights[j] = a.renormalize ? probs[order[j]] / kept_sum : probs[order[j]];
      } else {
        ids[j] = -1;
        weights[j] = 0.f;
      }
    }
  }
}

void PermutePlan(const PermuteArgs& a, int32_t* cursor) {
  const int k = a.top_k;
  const int64_t slots = static_cast<int64_t>(a.num_tokens) * k;
  std::fill(cursor, cursor + a.num_experts, 0);
  for (int64_t i = 0; i < slots; ++i) {
    const int32_t e = a.expert_ids[i];
    if (e < 0) continue;
    MOE_CHECK_LT(e, a.num_experts) << "expert id out of range";
    ++cursor[e];
  }
  a.expert_offsets[0] = 0;
  for (int e = 0; e < a.num_experts; ++e) {
    a.expert_offsets[e + 1] = a.expert_offsets[e] + cursor[e];
    cursor[e] = a.expert_offsets[e];
  }
  for (int64_t i = 0; i < slots; ++i) {
    const int32_t e = a.expert_ids[i];
    if (e < 0) {
      a.slot_to_row[i] = -1;
      continue;
    }
    const int32_t row = cursor[e]++;
    a.row_to_token[row] = static_cast<int32_t>(i / k);
    a.slot_to_row[i] = row;
  }
}

void PermuteCopyRows(const PermuteArgs& a, int64_t token_begin, int64_t token_end) {
  const size_t row_bytes = static_cast<size_t>(a.x.cols) * a.x.ElementSize();
  for (int64_t t = token_begin; t < token_end; ++t) {
    for (int j = 0; j < a.top_k; ++j) {
      const int32_t row = a.slot_to_row[t * a.top_k + j];
      if (row >= 0) std::memcpy(a.rows.Row(row), a.x.Row(t), row_bytes);
    }
  }
}

void CombineRows(const UnpermuteCombineArgs& a, int64_t begin, int64_t end, float* scratch) {
  const int k = a.top_k;
  const int64_t h = a.out.cols;
  float* acc = scratch;
  float* row = scratch + h;
  for (int64_t t = begin; t < end; ++t) {
    std::fill(acc, acc + h, 0.f);
    for (int j = 0; j < k; ++j) {
      const int32_t r = a.slot_to_row[t * k + j];
      if (r < 0) continue;
      const float w = a.expert_weights[t * k + j];
      LoadRowF(a.y_rows, r, row);
      for (int64_t i = 0; i < h; ++i) acc[i] += w * row[i];
    }
    if (a.shared.data != nullptr) {
      float gate = 1.f;
      if (a.shared_gate.data != nullptr) {
        float logit;
        LoadRowF(a.shared_gate.ColRange(0, 1), t, &logit);
        gate = 1.f / (1.f + std::exp(-logit));
      }
      LoadRowF(a.shared, t, row);
      for (int64_t i = 0; i < h; ++i) acc[i] += gate * row[i];
    }
    StoreRowF(a.out, t, acc);
  }
}

void EmbedRows(const EmbedArgs& a, TensorView table, int64_t begin, int64_t end) {
  for (int64_t t = begin; t < end; ++t) {
    const int32_t id = a.token_ids[t];
    MOE_CHECK(id >= 0 && id < table.rows)
        << "token id " << id << " outside [0, " << table.rows << ")";
    ConvertRow(table, id, a.out, t);
  }
}

void GatherRows(const GatherRowsArgs& a, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    MOE_CHECK(a.indices[i] >= 0 && a.indices[i] < a.x.rows) << "gather index out of range";
    ConvertRow(a.x, a.indices[i], a.out, i);
  }
}

void KvWriteRows(const KvWriteArgs& a, int64_t begin, int64_t end) {
  for (int64_t t = begin; t < end; ++t) {
    const int64_t slot = a.slot_mapping[t];
    if (slot < 0) continue;
    MOE_CHECK_LT(slot, a.cache.k.rows) << "KV slot out of range";
    ConvertRow(a.k, t, a.cache.k, slot);
    ConvertRow(a.v, t, a.cache.v, slot);
  }
}

}  // namespace moe::engine::cpu::ops
