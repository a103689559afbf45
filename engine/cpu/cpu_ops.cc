#include "engine/cpu/cpu_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/cpu/element.h"

namespace moe::engine::cpu::ops {
namespace {

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
      for (int64_t c = 0; c < v.cols; ++c) dst[c] = FloatToBf16Bits(src[c]);
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
    case DType::kF32: return v;
    case DType::kBF16: return RoundToBf16(v);
    default: return DispatchFloat(dtype, [&](auto tag) { return RoundAs<decltype(tag)>(v); });
  }
}

// HF RMSNorm of v[0, n) in place, rounding where HF does (as ref::NormalizeInPlace).
void NormalizeInPlace(float* v, int64_t n, const float* weight, float eps, DType dtype) {
  float sum_sq = 0.f;
  for (int64_t i = 0; i < n; ++i) sum_sq += v[i] * v[i];
  const float inv = 1.f / std::sqrt(sum_sq / static_cast<float>(n) + eps);
  if (dtype == DType::kF32) {
    for (int64_t i = 0; i < n; ++i) v[i] = weight[i] * (v[i] * inv);
  } else if (dtype == DType::kBF16) {
    for (int64_t i = 0; i < n; ++i) v[i] = RoundToBf16(weight[i] * RoundToBf16(v[i] * inv));
  } else {
    for (int64_t i = 0; i < n; ++i) v[i] = RoundTo(dtype, weight[i] * RoundTo(dtype, v[i] * inv));
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
    for (int64_t c = 0; c < src.cols; ++c) d[c] = FloatToBf16Bits(s[c]);
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
  float* v = scratch;
  float* add = scratch + h;
  for (int64_t t = begin; t < end; ++t) {
    LoadRowF(a.x, t, v);
    if (a.add.data != nullptr) {
      LoadRowF(a.add, t, add);
      if (a.x.dtype == DType::kF32) {
        for (int64_t i = 0; i < h; ++i) v[i] = v[i] + add[i];
      } else {
        for (int64_t i = 0; i < h; ++i) v[i] = RoundTo(a.x.dtype, v[i] + add[i]);
      }
      StoreRowF(a.x, t, v);
    }
    NormalizeInPlace(v, h, a.weight, a.eps, a.out.dtype);
    StoreRowF(a.out, t, v);
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
    const float base_pow = static_cast<float>(std::pow(static_cast<double>(theta),
                                                       static_cast<double>(exponent)));
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
  const int d = a.head_dim;
  const int half = d / 2;
  float* v = scratch;
  float* cs_local = scratch + std::max(a.q.cols, a.k.cols);  // [head_dim] when not tabled
  auto process = [&](const TensorView& m, int num_heads, const float* norm_weight, int64_t t,
                     const float* cs) {
    LoadRowF(m, t, v);
    if (a.norm == model::QkNormKind::kPerHead) {
      for (int h = 0; h < num_heads; ++h) {
        NormalizeInPlace(v + h * d, d, norm_weight, a.eps, m.dtype);
      }
    } else if (a.norm == model::QkNormKind::kFull) {
      NormalizeInPlace(v, static_cast<int64_t>(num_heads) * d, norm_weight, a.eps, m.dtype);
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
    const float* cs = rope.head_dim() == d && rope.theta() == a.rope_theta
                          ? rope.Row(a.positions[t])
                          : nullptr;
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
  int order[256];
  MOE_CHECK(k <= 256) << "top_k above 256";
  for (int64_t t = begin; t < end; ++t) {
    LoadRowF(a.logits, t, logits);
    // The first k of a stable descending sort by logit (ties to the lower expert id).
    for (int j = 0; j < k; ++j) {
      int best = -1;
      for (int e = 0; e < e_count; ++e) {
        bool taken = false;
        for (int i = 0; i < j; ++i) taken |= order[i] == e;
        if (taken) continue;
        if (best < 0 || logits[e] > logits[best]) best = e;
      }
      order[j] = best;
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
    MOE_CHECK(id >= 0 && id < table.rows) << "token id " << id << " outside [0, " << table.rows
                                          << ")";
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
