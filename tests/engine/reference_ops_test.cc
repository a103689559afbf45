// The reference ops against values computed by hand. These are the oracle for every optimized
// kernel, so they are checked against arithmetic, not against another implementation.
#include "engine/cpu/reference_ops.h"

#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "core/bf16.h"

namespace moe::engine::cpu::ref {
namespace {

TensorView View(std::vector<float>& v, int64_t rows, int64_t cols) {
  return TensorView::Contiguous(v.data(), DType::kF32, rows, cols);
}
TensorView View(std::vector<Bf16>& v, int64_t rows, int64_t cols) {
  return TensorView::Contiguous(v.data(), DType::kBF16, rows, cols);
}

TEST(RefRmsNorm, MatchesHandComputation) {
  std::vector<float> x = {1, 2, 3, 4}, out(4);
  const float w[] = {1, 0.5f, 2, 1};
  RmsNorm(View(x, 1, 4), TensorView{}, w, 0.f, View(out, 1, 4), nullptr);
  const float inv = 1.f / std::sqrt(7.5f);
  EXPECT_FLOAT_EQ(out[0], 1 * inv);
  EXPECT_FLOAT_EQ(out[1], 0.5f * 2 * inv);
  EXPECT_FLOAT_EQ(out[2], 2 * 3 * inv);
  EXPECT_FLOAT_EQ(out[3], 4 * inv);
}

TEST(RefRmsNorm, FusedResidualAddUpdatesInput) {
  std::vector<float> x = {1, 1}, add = {2, -4}, out(2);
  const float w[] = {1, 1};
  RmsNorm(View(x, 1, 2), View(add, 1, 2), w, 0.f, View(out, 1, 2), nullptr);
  EXPECT_EQ(x, (std::vector<float>{3, -3}));
  EXPECT_FLOAT_EQ(out[0], 1.f);
  EXPECT_FLOAT_EQ(out[1], -1.f);
}

TEST(RefRmsNorm, Bf16RoundsBeforeAndAfterWeight) {
  // HF: weight * round_bf16(x * rsqrt(...)), then the product rounds to bf16 again.
  std::vector<Bf16> x = {ToBf16(1.f), ToBf16(3.f)}, out(2);
  const float w[] = {1.01f, 1.f};
  RmsNorm(View(x, 1, 2), TensorView{}, w, 0.f, View(out, 1, 2), nullptr);
  const float inv = 1.f / std::sqrt(5.f);
  EXPECT_EQ(out[0].bits, ToBf16(1.01f * RoundToBf16(inv)).bits);
  EXPECT_EQ(out[1].bits, ToBf16(RoundToBf16(3 * inv)).bits);
}

TEST(RefLinear, MatchesHandComputationWithBias) {
  std::vector<float> x = {1, 2, 3, -1, 0, 1}, out(4);
  std::vector<Bf16> w = {ToBf16(1), ToBf16(0), ToBf16(0), ToBf16(0.5f), ToBf16(0.5f), ToBf16(-2)};
  const float bias[] = {10, 20};
  Linear(View(x, 2, 3), View(w, 2, 3), bias, View(out, 2, 2), nullptr);
  EXPECT_EQ(out, (std::vector<float>{1 + 10, 1.5f - 6 + 20, -1 + 10, -0.5f - 2 + 20}));
}

TEST(RefLinear, ColumnSplitEqualsRowSplit) {
  // One row (column-parallel path) must equal the same row inside a larger batch.
  std::vector<float> x(5 * 37), w(29 * 37), out_one(29), out_all(5 * 29);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.1f * i);
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::cos(0.07f * i);
  ThreadPool pool(2);
  Linear(View(x, 5, 37).RowRange(3, 1), View(w, 29, 37), nullptr, View(out_one, 1, 29), &pool);
  Linear(View(x, 5, 37), View(w, 29, 37), nullptr, View(out_all, 5, 29), &pool);
  for (int n = 0; n < 29; ++n) EXPECT_EQ(out_one[n], out_all[3 * 29 + n]);
}

TEST(RefRope, PositionZeroIsIdentityAndPositionOneRotates) {
  // head_dim 4, theta 100: inv_freq = {1, 0.1}; pairs (0,2) and (1,3).
  std::vector<float> q = {1, 2, 3, 4, 1, 2, 3, 4}, k = {1, 0, 0, 1, 1, 0, 0, 1};
  const int32_t positions[] = {0, 1};
  QkNormRopeArgs a;
  a.q = View(q, 2, 4);
  a.k = View(k, 2, 4);
  a.positions = positions;
  a.num_tokens = 2;
  a.num_heads = 1;
  a.num_kv_heads = 1;
  a.head_dim = 4;
  a.rope_theta = 100.f;
  QkNormRope(a, nullptr);
  EXPECT_EQ(std::vector<float>(q.begin(), q.begin() + 4), (std::vector<float>{1, 2, 3, 4}));
  const float c0 = std::cos(1.f), s0 = std::sin(1.f), c1 = std::cos(0.1f), s1 = std::sin(0.1f);
  EXPECT_NEAR(q[4], 1 * c0 - 3 * s0, 1e-6);
  EXPECT_NEAR(q[6], 3 * c0 + 1 * s0, 1e-6);
  EXPECT_NEAR(q[5], 2 * c1 - 4 * s1, 1e-6);
  EXPECT_NEAR(q[7], 4 * c1 + 2 * s1, 1e-6);
  EXPECT_NEAR(k[4], c0, 1e-6);
  EXPECT_NEAR(k[6], s0, 1e-6);
}

TEST(RefRope, PerHeadNormUsesSharedWeight) {
  std::vector<float> q = {3, 4, 6, 8}, k = {0, 2};
  const float qw[] = {1, 2}, kw[] = {1, 1};
  const int32_t pos[] = {0};
  QkNormRopeArgs a;
  a.q = View(q, 1, 4);
  a.k = View(k, 1, 2);
  a.positions = pos;
  a.num_tokens = 1;
  a.num_heads = 2;
  a.num_kv_heads = 1;
  a.head_dim = 2;
  a.norm = model::QkNormKind::kPerHead;
  a.q_norm_weight = qw;
  a.k_norm_weight = kw;
  a.eps = 0.f;
  QkNormRope(a, nullptr);
  const float inv = 1.f / std::sqrt(12.5f);  // mean(9, 16)
  EXPECT_FLOAT_EQ(q[0], 3 * inv);
  EXPECT_FLOAT_EQ(q[1], 2 * 4 * inv);
  const float inv2 = 1.f / std::sqrt(50.f);  // mean(36, 64)
  EXPECT_FLOAT_EQ(q[2], 6 * inv2);
  EXPECT_FLOAT_EQ(q[3], 2 * 8 * inv2);
  EXPECT_FLOAT_EQ(k[1], std::sqrt(2.f));
}

TEST(RefRope, InverseFrequencies) {
  const auto inv = RopeInverseFrequencies(8, 10000.0);
  ASSERT_EQ(inv.size(), 4u);
  EXPECT_FLOAT_EQ(inv[0], 1.f);
  EXPECT_FLOAT_EQ(inv[1], 0.1f);
  EXPECT_FLOAT_EQ(inv[2], 0.01f);
  EXPECT_FLOAT_EQ(inv[3], 0.001f);
}

// One kv head of dim 2, block size 2, sequence stored in blocks {3, 1} (not contiguous).
struct AttentionFixture {
  std::vector<float> kc = std::vector<float>(8 * 2, 0.f), vc = std::vector<float>(8 * 2, 0.f);
  int32_t table[2] = {3, 1};
  KvCacheView cache{View(kc, 8, 2), View(vc, 8, 2), 2};
  void Put(int pos, float k0, float k1, float v0, float v1) {
    const int slot = table[pos / 2] * 2 + pos % 2;
    kc[slot * 2] = k0;
    kc[slot * 2 + 1] = k1;
    vc[slot * 2] = v0;
    vc[slot * 2 + 1] = v1;
  }
};

TEST(RefAttention, CausalSoftmaxOverPagedCache) {
  AttentionFixture f;
  f.Put(0, 1, 0, 10, 0);
  f.Put(1, 0, 1, 0, 10);
  f.Put(2, 1, 1, 5, 5);
  std::vector<float> q = {2, 0, 0, 0}, out(4), scratch(16);
  const int32_t query_start[] = {0, 2};
  const int32_t positions[] = {0, 2};
  AttentionArgs a;
  a.q = View(q, 2, 2);
  a.cache = f.cache;
  a.query_start = query_start;
  a.positions = positions;
  a.block_tables = f.table;
  a.max_blocks_per_seq = 2;
  a.num_seqs = 1;
  a.num_tokens = 2;
  a.num_heads = 1;
  a.num_kv_heads = 1;
  a.head_dim = 2;
  a.scale = 0.5f;
  a.out = View(out, 2, 2);
  Attention(a, scratch.data(), 16, nullptr);
  // Token at position 0 sees only key 0.
  EXPECT_FLOAT_EQ(out[0], 10);
  EXPECT_FLOAT_EQ(out[1], 0);
  // Position 2 with q = 0: uniform over three keys.
  EXPECT_NEAR(out[2], 5.f, 1e-5);
  EXPECT_NEAR(out[3], 5.f, 1e-5);
  // q = (2, 0) at position 0 alone is trivially 1.0 weight; check scores at position 1.
  std::vector<float> q2 = {2, 0};
  const int32_t pos1[] = {1};
  const int32_t qs1[] = {0, 1};
  a.q = View(q2, 1, 2);
  a.positions = pos1;
  a.query_start = qs1;
  a.num_tokens = 1;
  std::vector<float> out1(2);
  a.out = View(out1, 1, 2);
  Attention(a, scratch.data(), 16, nullptr);
  const float e = std::exp(1.f);  // scores: key0 = 2*0.5 = 1, key1 = 0
  EXPECT_NEAR(out1[0], 10 * e / (e + 1), 1e-5);
  EXPECT_NEAR(out1[1], 10 * 1 / (e + 1), 1e-5);
}

TEST(RefAttention, SlidingWindowLimitsKeys) {
  AttentionFixture f;
  f.Put(0, 0, 0, 100, 100);
  f.Put(1, 0, 0, 1, 1);
  f.Put(2, 0, 0, 3, 3);
  std::vector<float> q = {0, 0}, out(2), scratch(16);
  const int32_t qs[] = {0, 1}, pos[] = {2};
  AttentionArgs a;
  a.q = View(q, 1, 2);
  a.cache = f.cache;
  a.query_start = qs;
  a.positions = pos;
  a.block_tables = f.table;
  a.max_blocks_per_seq = 2;
  a.num_seqs = 1;
  a.num_tokens = 1;
  a.num_heads = 1;
  a.num_kv_heads = 1;
  a.head_dim = 2;
  a.sliding_window = 2;
  a.out = View(out, 1, 2);
  Attention(a, scratch.data(), 16, nullptr);
  EXPECT_FLOAT_EQ(out[0], 2.f);
}

TEST(RefRouter, SoftmaxTopKRenormalisedWithTiesToLowerId) {
  std::vector<float> logits = {0, std::log(3.f), 0, std::log(3.f)};
  int32_t ids[2];
  float w[2];
  RouterTopKArgs a;
  a.logits = View(logits, 1, 4);
  a.num_tokens = 1;
  a.num_experts = 4;
  a.top_k = 2;
  a.expert_ids = ids;
  a.expert_weights = w;
  RouterTopK(a);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(ids[1], 3);
  EXPECT_FLOAT_EQ(w[0], 0.5f);
  EXPECT_FLOAT_EQ(w[1], 0.5f);
  a.renormalize = false;
  RouterTopK(a);
  EXPECT_NEAR(w[0], 3.f / 8, 1e-6);
}

TEST(RefRouter, MixtralSoftmaxOverTopKLogits) {
  std::vector<float> logits = {5, 1, 0, 1 + std::log(2.f)};
  int32_t ids[2];
  float w[2];
  RouterTopKArgs a;
  a.logits = View(logits, 1, 4);
  a.num_tokens = 1;
  a.num_experts = 4;
  a.top_k = 2;
  a.kind = model::RouterKind::kTopKSoftmax;
  a.expert_ids = ids;
  a.expert_weights = w;
  RouterTopK(a);
  EXPECT_EQ(ids[0], 0);
  EXPECT_EQ(ids[1], 3);
  const float e = std::exp(5.f - 1 - std::log(2.f));
  EXPECT_NEAR(w[0], e / (e + 1), 1e-6);
}

TEST(RefRouter, DynamicTopPKeepsFewestExpertsReachingMass) {
  // probs 0.5, 0.3, 0.2 (logs) -> top_p 0.7 keeps two, 0.4 keeps one.
  std::vector<float> logits = {std::log(0.3f), std::log(0.5f), std::log(0.2f)};
  int32_t ids[3];
  float w[3];
  RouterTopKArgs a;
  a.logits = View(logits, 1, 3);
  a.num_tokens = 1;
  a.num_experts = 3;
  a.top_k = 3;
  a.top_p = 0.7f;
  a.expert_ids = ids;
  a.expert_weights = w;
  RouterTopK(a);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(ids[1], 0);
  EXPECT_EQ(ids[2], -1);
  EXPECT_NEAR(w[0], 0.5f / 0.8f, 1e-6);
  EXPECT_EQ(w[2], 0.f);
  a.top_p = 0.4f;
  RouterTopK(a);
  EXPECT_EQ(ids[1], -1);
  EXPECT_FLOAT_EQ(w[0], 1.f);
}

TEST(RefPermute, GroupsByExpertAndHandlesMissingSlots) {
  // 3 tokens, k = 2, 4 experts; token 1 has only one expert; expert 2 gets nothing.
  std::vector<float> x = {10, 11, 20, 21, 30, 31}, rows(12, -1);
  const int32_t ids[] = {3, 0, 0, -1, 3, 1};
  int32_t offsets[5], row_to_token[6], slot_to_row[6];
  PermuteArgs a;
  a.x = View(x, 3, 2);
  a.expert_ids = ids;
  a.num_tokens = 3;
  a.top_k = 2;
  a.num_experts = 4;
  a.rows = View(rows, 6, 2);
  a.expert_offsets = offsets;
  a.row_to_token = row_to_token;
  a.slot_to_row = slot_to_row;
  Permute(a);
  EXPECT_EQ(std::vector<int32_t>(offsets, offsets + 5), (std::vector<int32_t>{0, 2, 3, 3, 5}));
  EXPECT_EQ(std::vector<int32_t>(row_to_token, row_to_token + 5),
            (std::vector<int32_t>{0, 1, 2, 0, 2}));
  EXPECT_EQ(std::vector<int32_t>(slot_to_row, slot_to_row + 6),
            (std::vector<int32_t>{3, 0, 1, -1, 4, 2}));
  EXPECT_EQ(std::vector<float>(rows.begin(), rows.begin() + 10),
            (std::vector<float>{10, 11, 20, 21, 30, 31, 10, 11, 30, 31}));
}

TEST(RefUnpermuteCombine, WeightedSumInSlotOrderPlusSharedExpert) {
  std::vector<float> y_rows = {1, 2, 3, 4, 5, 6}, out(4), shared = {100, 200, 0, 0};
  std::vector<float> gate = {0.f, -1000.f};
  const int32_t slot_to_row[] = {2, 0, 1, -1};
  const float weights[] = {0.5f, 0.25f, 1.f, 0.f};
  UnpermuteCombineArgs a;
  a.y_rows = View(y_rows, 3, 2);
  a.slot_to_row = slot_to_row;
  a.expert_weights = weights;
  a.num_tokens = 2;
  a.top_k = 2;
  a.shared = View(shared, 2, 2);
  a.shared_gate = View(gate, 2, 1);
  a.out = View(out, 2, 2);
  UnpermuteCombine(a, nullptr);
  EXPECT_FLOAT_EQ(out[0], 0.5f * 5 + 0.25f * 1 + 0.5f * 100);
  EXPECT_FLOAT_EQ(out[1], 0.5f * 6 + 0.25f * 2 + 0.5f * 200);
  EXPECT_FLOAT_EQ(out[2], 3);
  EXPECT_FLOAT_EQ(out[3], 4);
}

TEST(RefGroupedGemm, SwiGluAndDownPerExpert) {
  // H = 2, F = 1, two experts; expert 0 has no rows.
  std::vector<float> e0 = {9, 9, 9, 9}, e0_down = {9, 9};
  std::vector<float> e1 = {1, 0, 0, 2}, e1_down = {1, -1};  // gate = x0, up = 2 x1
  std::vector<ExpertMatrices> experts = {{View(e0, 2, 2), View(e0_down, 2, 1)},
                                         {View(e1, 2, 2), View(e1_down, 2, 1)}};
  std::vector<float> rows = {1, 3, -2, 1}, h(2), y(4);
  const int32_t offsets[] = {0, 0, 2};
  GroupedGemmSwiGlu(View(rows, 2, 2), offsets, experts, View(h, 2, 1), nullptr);
  auto silu = [](float v) { return v / (1 + std::exp(-v)); };
  EXPECT_FLOAT_EQ(h[0], silu(1) * 6);
  EXPECT_FLOAT_EQ(h[1], silu(-2) * 2);
  GroupedGemm(View(h, 2, 1), offsets, experts, View(y, 2, 2), nullptr);
  EXPECT_FLOAT_EQ(y[0], h[0]);
  EXPECT_FLOAT_EQ(y[1], -h[0]);
  EXPECT_FLOAT_EQ(y[3], -h[1]);
}

TEST(RefSiluMulAndGather, Basic) {
  std::vector<float> x = {0, 1, 5, 7}, out(2);
  SiluMul(View(x, 1, 4), View(out, 1, 2), nullptr);
  EXPECT_FLOAT_EQ(out[0], 0);
  EXPECT_FLOAT_EQ(out[1], (1 / (1 + std::exp(-1.f))) * 7);
  std::vector<float> src = {1, 2, 3, 4, 5, 6}, dst(4);
  const int32_t idx[] = {2, 0};
  GatherRows(View(src, 3, 2), idx, 2, View(dst, 2, 2));
  EXPECT_EQ(dst, (std::vector<float>{5, 6, 1, 2}));
}

TEST(RefKvWrite, SkipsNegativeSlotsAndRounds) {
  std::vector<float> k = {1.001f, 2, 3, 4}, v = {5, 6, 7, 8};
  std::vector<Bf16> kc(8, Bf16{0}), vc(8, Bf16{0});
  const int64_t slots[] = {3, -1};
  KvWriteArgs a{View(k, 2, 2), View(v, 2, 2), slots, 2,
                KvCacheView{View(kc, 4, 2), View(vc, 4, 2), 2}};
  KvWrite(a);
  EXPECT_EQ(kc[6].bits, ToBf16(1.001f).bits);
  EXPECT_EQ(ToFloat(vc[7]), 6.f);
  EXPECT_EQ(kc[0].bits, 0);
}

}  // namespace
}  // namespace moe::engine::cpu::ref
