#include "engine/cpu/reference_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "engine/cpu/element.h"

namespace moe::engine::cpu::ref {
namespace {

// Runs fn(begin, end) over [0, n) rows, on the pool when there is one.
template <typename Fn>
void ForRows(ThreadPool* pool, int64_t n, Fn&& fn) {
  if (n <= 0) return;
  if (pool == nullptr) {
    fn(int64_t{0}, n, 0);
    return;
  }
  pool->ParallelFor(n, [&](int64_t begin, int64_t end, int chunk) { fn(begin, end, chunk); });
}

// Loads row r of a float view into `dst` as floats.
void LoadRow(const TensorView& v, int64_t r, float* dst) {
  DispatchFloat(v.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* src = v.RowAs<T>(r);
    for (int64_t c = 0; c < v.cols; ++c) dst[c] = Load(src + c);
  });
}

void StoreRow(const TensorView& v, int64_t r, const float* src) {
  DispatchFloat(v.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* dst = v.RowAs<T>(r);
    for (int64_t c = 0; c < v.cols; ++c) Store(dst + c, src[c]);
  });
}

float RoundTo(DType dtype, float v) {
  return DispatchFloat(dtype, [&](auto tag) { return RoundAs<decltype(tag)>(v); });
}

// sum_k a[k] * w[k] in order, F32.
template <typename TW>
float Dot(const float* a, const TW* w, int64_t n) {
  float acc = 0.f;
  for (int64_t k = 0; k < n; ++k) acc += a[k] * Load(w + k);
  return acc;
}

float Silu(float x) { return x / (1.f + std::exp(-x)); }

// Normalises v[0, n) in place as HF's RMSNorm does, rounding to `dtype` where HF would.
void NormalizeInPlace(float* v, int64_t n, const float* weight, float eps, DType dtype) {
  float sum_sq = 0.f;
  for (int64_t i = 0; i < n; ++i) sum_sq += v[i] * v[i];
  const float inv = 1.f / std::sqrt(sum_sq / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) v[i] = RoundTo(dtype, weight[i] * RoundTo(dtype, v[i] * inv));
}

// NeoX RoPE on one head in place: pairs (i, i + d/2).
void RotateHead(float* v, int head_dim, int32_t position, const std::vector<float>& inv_freq) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    const float angle = static_cast<float>(position) * inv_freq[i];
    const float c = static_cast<float>(std::cos(static_cast<double>(angle)));
    const float s = static_cast<float>(std::sin(static_cast<double>(angle)));
    const float x1 = v[i];
    const float x2 = v[i + half];
    v[i] = x1 * c - x2 * s;
    v[i + half] = x2 * c + x1 * s;
  }
}

}  // namespace

std::vector<float> RopeInverseFrequencies(int head_dim, double theta) {
  std::vector<float> inv(head_dim / 2);
  for (int i = 0; i < head_dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    const float base_pow = static_cast<float>(std::pow(theta, static_cast<double>(exponent)));
    inv[i] = 1.0f / base_pow;
  }
  return inv;
}

void Embed(const int32_t* token_ids, int num_tokens, TensorView table, TensorView out,
           ThreadPool* pool) {
  MOE_CHECK_EQ(table.cols, out.cols);
  ForRows(pool, num_tokens, [&](int64_t begin, int64_t end, int) {
    std::vector<float> row(table.cols);
    for (int64_t t = begin; t < end; ++t) {
      const int32_t id = token_ids[t];
      MOE_CHECK(id >= 0 && id < table.rows)
          << "token id " << id << " outside [0, " << table.rows << ")";
      LoadRow(table, id, row.data());
      StoreRow(out, t, row.data());
    }
  });
}

void RmsNorm(TensorView x, TensorView add, const float* weight, float eps, TensorView out,
             ThreadPool* pool) {
  MOE_CHECK_EQ(x.cols, out.cols);
  ForRows(pool, x.rows, [&](int64_t begin, int64_t end, int) {
    std::vector<float> v(x.cols), a(x.cols);
    for (int64_t t = begin; t < end; ++t) {
      LoadRow(x, t, v.data());
      if (add.data != nullptr) {
        LoadRow(add, t, a.data());
        for (int64_t i = 0; i < x.cols; ++i) v[i] = RoundTo(x.dtype, v[i] + a[i]);
        StoreRow(x, t, v.data());
      }
      NormalizeInPlace(v.data(), x.cols, weight, eps, out.dtype);
      StoreRow(out, t, v.data());
    }
  });
}

void Linear(TensorView x, TensorView w, const float* bias, TensorView out, ThreadPool* pool) {
  MOE_CHECK_EQ(x.cols, w.cols) << "Linear: in_features";
  MOE_CHECK_EQ(out.cols, w.rows) << "Linear: out_features";
  MOE_CHECK_EQ(x.rows, out.rows);
  // Parallel over output columns when there are few rows, so one-token steps use every thread;
  // either way each output element is one sequential dot product.
  const bool by_columns = x.rows < 4 && pool != nullptr;
  DispatchFloat(w.dtype, [&](auto wtag) {
    using TW = decltype(wtag);
    auto run = [&](int64_t t0, int64_t t1, int64_t n0, int64_t n1) {
      std::vector<float> a(x.cols), o(out.cols);
      for (int64_t t = t0; t < t1; ++t) {
        LoadRow(x, t, a.data());
        for (int64_t n = n0; n < n1; ++n) {
          float acc = Dot(a.data(), w.RowAs<TW>(n), x.cols);
          if (bias != nullptr) acc += bias[n];
          o[n] = acc;
        }
        StoreRow(out.ColRange(n0, n1 - n0), t, o.data() + n0);
      }
    };
    if (by_columns) {
      ForRows(pool, w.rows, [&](int64_t n0, int64_t n1, int) { run(0, x.rows, n0, n1); });
    } else {
      ForRows(pool, x.rows, [&](int64_t t0, int64_t t1, int) { run(t0, t1, 0, w.rows); });
    }
  });
}

void QkNormRope(const QkNormRopeArgs& args, ThreadPool* pool) {
  const std::vector<float> inv_freq = RopeInverseFrequencies(args.head_dim, args.rope_theta);
  auto process = [&](TensorView m, int num_heads, const float* norm_weight, int64_t t,
                     std::vector<float>& v) {
    LoadRow(m, t, v.data());
    if (args.norm == model::QkNormKind::kPerHead) {
      for (int h = 0; h < num_heads; ++h) {
        NormalizeInPlace(v.data() + h * args.head_dim, args.head_dim, norm_weight, args.eps,
                         m.dtype);
      }
    } else if (args.norm == model::QkNormKind::kFull) {
      NormalizeInPlace(v.data(), static_cast<int64_t>(num_heads) * args.head_dim, norm_weight,
                       args.eps, m.dtype);
    }
    for (int h = 0; h < num_heads; ++h) {
      RotateHead(v.data() + h * args.head_dim, args.head_dim, args.positions[t], inv_freq);
    }
    StoreRow(m, t, v.data());
  };
  ForRows(pool, args.num_tokens, [&](int64_t begin, int64_t end, int) {
    std::vector<float> v(std::max(args.q.cols, args.k.cols));
    for (int64_t t = begin; t < end; ++t) {
      process(args.q, args.num_heads, args.q_norm_weight, t, v);
      process(args.k, args.num_kv_heads, args.k_norm_weight, t, v);
    }
  });
}

void KvWrite(const KvWriteArgs& args) {
  std::vector<float> row(args.k.cols);
  for (int t = 0; t < args.num_tokens; ++t) {
    const int64_t slot = args.slot_mapping[t];
    if (slot < 0) continue;
    MOE_CHECK_LT(slot, args.cache.k.rows) << "KV slot out of range";
    LoadRow(args.k, t, row.data());
    StoreRow(args.cache.k, slot, row.data());
    LoadRow(args.v, t, row.data());
    StoreRow(args.cache.v, slot, row.data());
  }
}

void Attention(const AttentionArgs& args, float* scratch, int64_t scratch_per_thread,
               ThreadPool* pool) {
  const int d = args.head_dim;
  const int group = args.num_heads / args.num_kv_heads;
  const int bs = args.cache.block_size;
  // Sequence of each query row.
  std::vector<int> seq_of(args.num_tokens);
  for (int s = 0; s < args.num_seqs; ++s) {
    for (int t = args.query_start[s]; t < args.query_start[s + 1]; ++t) seq_of[t] = s;
  }
  ForRows(pool, args.num_tokens, [&](int64_t begin, int64_t end, int chunk) {
    float* scores = scratch + static_cast<int64_t>(chunk) * scratch_per_thread;
    std::vector<float> q(args.q.cols), o(args.out.cols), kv(d);
    for (int64_t t = begin; t < end; ++t) {
      const int s = seq_of[t];
      const int32_t pos = args.positions[t];
      MOE_CHECK_LT(pos, scratch_per_thread) << "position beyond max_context";
      const int32_t first =
          args.sliding_window > 0 ? std::max(0, pos - args.sliding_window + 1) : 0;
      const int32_t* table = args.block_tables + static_cast<int64_t>(s) * args.max_blocks_per_seq;
      auto slot_of = [&](int32_t j) -> int64_t {
        return static_cast<int64_t>(table[j / bs]) * bs + j % bs;
      };
      LoadRow(args.q, t, q.data());
      for (int h = 0; h < args.num_heads; ++h) {
        const int g = h / group;
        const float* qh = q.data() + h * d;
        float max_score = -INFINITY;
        for (int32_t j = first; j <= pos; ++j) {
          LoadRow(args.cache.k.ColRange(g * d, d), slot_of(j), kv.data());
          float dot = 0.f;
          for (int i = 0; i < d; ++i) dot += qh[i] * kv[i];
          scores[j] = dot * args.scale;
          max_score = std::max(max_score, scores[j]);
        }
        float denom = 0.f;
        for (int32_t j = first; j <= pos; ++j) {
          scores[j] = std::exp(scores[j] - max_score);
          denom += scores[j];
        }
        float* oh = o.data() + h * d;
        std::fill(oh, oh + d, 0.f);
        for (int32_t j = first; j <= pos; ++j) {
          LoadRow(args.cache.v.ColRange(g * d, d), slot_of(j), kv.data());
          const float p = scores[j] / denom;
          for (int i = 0; i < d; ++i) oh[i] += p * kv[i];
        }
      }
      StoreRow(args.out, t, o.data());
    }
  });
}

void RouterTopK(const RouterTopKArgs& args) {
  const int e_count = args.num_experts;
  const int k = args.top_k;
  std::vector<float> logits(e_count), probs(e_count);
  std::vector<int> order(e_count);
  for (int t = 0; t < args.num_tokens; ++t) {
    LoadRow(args.logits, t, logits.data());
    std::iota(order.begin(), order.end(), 0);
    // Descending logit; ties to the lower expert id. Softmax is monotonic, so the same order
    // ranks probabilities.
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return logits[a] > logits[b]; });
    int32_t* ids = args.expert_ids + static_cast<int64_t>(t) * k;
    float* weights = args.expert_weights + static_cast<int64_t>(t) * k;
    if (args.kind == model::RouterKind::kTopKSoftmax) {
      const float max_logit = logits[order[0]];
      float sum = 0.f;
      for (int j = 0; j < k; ++j) sum += std::exp(logits[order[j]] - max_logit);
      for (int j = 0; j < k; ++j) {
        ids[j] = order[j];
        weights[j] = std::exp(logits[order[j]] - max_logit) / sum;
      }
      continue;
    }
    const float max_logit = logits[order[0]];
    float sum = 0.f;
    for (int e = 0; e < e_count; ++e) {
      probs[e] = std::exp(logits[e] - max_logit);
      sum += probs[e];
    }
    for (int e = 0; e < e_count; ++e) probs[e] /= sum;
    int kept = k;
    if (args.top_p > 0.f) {
      float mass = 0.f;
      kept = 0;
      while (kept < k) {
        mass += probs[order[kept]];
        ++kept;
        if (mass >= args.top_p) break;
      }
    }
    float kept_sum = 0.f;
    for (int j = 0; j < kept; ++j) kept_sum += probs[order[j]];
    for (int j = 0; j < k; ++j) {
      if (j < kept) {
        ids[j] = order[j];
        weights[j] = args.renormalize ? probs[order[j]] / kept_sum : probs[order[j]];
      } else {
        ids[j] = -1;
        weights[j] = 0.f;
      }
    }
  }
}

void Permute(const PermuteArgs& args) {
  const int k = args.top_k;
  std::vector<int32_t> counts(args.num_experts, 0);
  for (int64_t i = 0; i < static_cast<int64_t>(args.num_tokens) * k; ++i) {
    const int32_t e = args.expert_ids[i];
    if (e < 0) continue;
    MOE_CHECK_LT(e, args.num_experts) << "expert id out of range";
    ++counts[e];
  }
  args.expert_offsets[0] = 0;
  for (int e = 0; e < args.num_experts; ++e) {
    args.expert_offsets[e + 1] = args.expert_offsets[e] + counts[e];
  }
  std::vector<int32_t> cursor(args.expert_offsets, args.expert_offsets + args.num_experts);
  const size_t row_bytes = static_cast<size_t>(args.x.cols) * args.x.ElementSize();
  MOE_CHECK(args.rows.dtype == args.x.dtype) << "Permute copies rows: dtypes must match";
  for (int t = 0; t < args.num_tokens; ++t) {
    for (int j = 0; j < k; ++j) {
      const int64_t slot = static_cast<int64_t>(t) * k + j;
      const int32_t e = args.expert_ids[slot];
      if (e < 0) {
        args.slot_to_row[slot] = -1;
        continue;
      }
      const int32_t row = cursor[e]++;
      std::memcpy(args.rows.Row(row), args.x.Row(t), row_bytes);
      args.row_to_token[row] = t;
      args.slot_to_row[slot] = row;
    }
  }
}

void GroupedGemmSwiGlu(TensorView rows, const int32_t* expert_offsets,
                       const std::vector<ExpertMatrices>& experts, TensorView out,
                       ThreadPool* pool) {
  const int num_experts = static_cast<int>(experts.size());
  const int64_t total = expert_offsets[num_experts];
  std::vector<int> expert_of(total);
  for (int e = 0; e < num_experts; ++e) {
    for (int32_t r = expert_offsets[e]; r < expert_offsets[e + 1]; ++r) expert_of[r] = e;
  }
  ForRows(pool, total, [&](int64_t begin, int64_t end, int) {
    std::vector<float> a(rows.cols), o(out.cols);
    for (int64_t r = begin; r < end; ++r) {
      const TensorView& w = experts[expert_of[r]].gate_up;
      const int64_t f_size = w.rows / 2;
      MOE_CHECK_EQ(f_size, out.cols);
      LoadRow(rows, r, a.data());
      DispatchFloat(w.dtype, [&](auto tag) {
        using TW = decltype(tag);
        for (int64_t f = 0; f < f_size; ++f) {
          const float g = Dot(a.data(), w.RowAs<TW>(f), rows.cols);
          const float u = Dot(a.data(), w.RowAs<TW>(f_size + f), rows.cols);
          o[f] = Silu(g) * u;
        }
      });
      StoreRow(out, r, o.data());
    }
  });
}

void GroupedGemm(TensorView h, const int32_t* expert_offsets,
                 const std::vector<ExpertMatrices>& experts, TensorView out, ThreadPool* pool) {
  const int num_experts = static_cast<int>(experts.size());
  const int64_t total = expert_offsets[num_experts];
  std::vector<int> expert_of(total);
  for (int e = 0; e < num_experts; ++e) {
    for (int32_t r = expert_offsets[e]; r < expert_offsets[e + 1]; ++r) expert_of[r] = e;
  }
  ForRows(pool, total, [&](int64_t begin, int64_t end, int) {
    std::vector<float> a(h.cols), o(out.cols);
    for (int64_t r = begin; r < end; ++r) {
      const TensorView& w = experts[expert_of[r]].down;
      MOE_CHECK_EQ(w.rows, out.cols);
      LoadRow(h, r, a.data());
      DispatchFloat(w.dtype, [&](auto tag) {
        using TW = decltype(tag);
        for (int64_t n = 0; n < w.rows; ++n) o[n] = Dot(a.data(), w.RowAs<TW>(n), h.cols);
      });
      StoreRow(out, r, o.data());
    }
  });
}

void UnpermuteCombine(const UnpermuteCombineArgs& args, ThreadPool* pool) {
  const int k = args.top_k;
  ForRows(pool, args.num_tokens, [&](int64_t begin, int64_t end, int) {
    std::vector<float> acc(args.out.cols), row(args.out.cols);
    for (int64_t t = begin; t < end; ++t) {
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int j = 0; j < k; ++j) {
        const int32_t r = args.slot_to_row[t * k + j];
        if (r < 0) continue;
        const float w = args.expert_weights[t * k + j];
        LoadRow(args.y_rows, r, row.data());
        for (int64_t i = 0; i < args.out.cols; ++i) acc[i] += w * row[i];
      }
      if (args.shared.data != nullptr) {
        float gate = 1.f;
        if (args.shared_gate.data != nullptr) {
          float logit;
          LoadRow(args.shared_gate, t, &logit);
          gate = 1.f / (1.f + std::exp(-logit));
        }
        LoadRow(args.shared, t, row.data());
        for (int64_t i = 0; i < args.out.cols; ++i) acc[i] += gate * row[i];
      }
      StoreRow(args.out, t, acc.data());
    }
  });
}

void SiluMul(TensorView x, TensorView out, ThreadPool* pool) {
  MOE_CHECK_EQ(x.cols, 2 * out.cols);
  ForRows(pool, x.rows, [&](int64_t begin, int64_t end, int) {
    std::vector<float> v(x.cols), o(out.cols);
    for (int64_t t = begin; t < end; ++t) {
      LoadRow(x, t, v.data());
      for (int64_t f = 0; f < out.cols; ++f) o[f] = Silu(v[f]) * v[out.cols + f];
      StoreRow(out, t, o.data());
    }
  });
}

void GatherRows(TensorView x, const int32_t* indices, int num_indices, TensorView out) {
  std::vector<float> v(x.cols);
  for (int i = 0; i < num_indices; ++i) {
    MOE_CHECK(indices[i] >= 0 && indices[i] < x.rows) << "gather index out of range";
    LoadRow(x, indices[i], v.data());
    StoreRow(out, i, v.data());
  }
}

}  // namespace moe::engine::cpu::ref
