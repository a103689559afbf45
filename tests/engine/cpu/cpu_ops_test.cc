// The row-wise ops and attention of the optimized CPU backend against the naive reference. The
// row-wise ops share one implementation across ISA paths and must match bit for bit; attention
// must match bit for bit on the scalar path and within tolerance on the vector paths.
#include <algorithm>
#include <numeric>

#include "core/bf16.h"
#include "tests/engine/cpu/cpu_test_util.h"

namespace moe::engine::cpu::testing {
namespace {

class CpuOpsTest : public ::testing::TestWithParam<CpuIsa> {
 protected:
  void SetUp() override {
    cpu_ = MakeCpuBackend(GetParam(), 2);
    ASSERT_TRUE(cpu_->Reserve(DefaultLimits()).ok());
    ASSERT_TRUE(ref_.Reserve(DefaultLimits()).ok());
  }
  ::testing::AssertionResult Equal(const HostMatrix& got, const HostMatrix& want, int64_t rows) {
    for (int64_t r = 0; r < rows; ++r) {
      auto result = BitEqualRows(got.view, r, want.view, r);
      if (!result) return result << " (row " << r << ")";
    }
    return ::testing::AssertionSuccess();
  }

  std::mt19937 rng_{99};
  std::unique_ptr<CpuBackend> cpu_;
  ReferenceBackend ref_{1};
};

TEST_P(CpuOpsTest, RmsNormMatchesReferenceExactly) {
  for (int t : {0, 1, 5, 70}) {
    for (int h : {1, 33, 1024}) {
      for (DType act : {DType::kF32, DType::kBF16}) {
        for (bool with_add : {false, true}) {
          std::vector<float> weight(h);
          for (float& w : weight) w = std::normal_distribution<float>(1.f, 0.1f)(rng_);
          HostMatrix x(act, t, h), add(act, t, h);
          x.Randomize(rng_);
          add.Randomize(rng_);
          HostMatrix x2(act, t, h);
          x2.CopyFrom(x);
          HostMatrix got(act, t, h), want(act, t, h);
          const TensorView add_view = with_add ? add.view : TensorView{};
          ASSERT_TRUE(
              cpu_->RmsNorm(RmsNormArgs{x.view, add_view, weight.data(), 1e-6f, got.view}, {})
                  .ok());
          ASSERT_TRUE(
              ref_.RmsNorm(RmsNormArgs{x2.view, add_view, weight.data(), 1e-6f, want.view}, {})
                  .ok());
          EXPECT_TRUE(Equal(got, want, t));
          EXPECT_TRUE(Equal(x, x2, t));  // the residual update
        }
      }
    }
  }
}

TEST_P(CpuOpsTest, QkNormRopeMatchesReferenceExactly) {
  for (auto norm :
       {model::QkNormKind::kNone, model::QkNormKind::kPerHead, model::QkNormKind::kFull}) {
    for (DType act : {DType::kF32, DType::kBF16}) {
      const int t = 9, heads = 8, kv_heads = 2, d = 64;
      // q and k are column windows of one fused qkv matrix, as the model passes them.
      HostMatrix qkv(act, t, (heads + 2 * kv_heads) * d);
      qkv.Randomize(rng_);
      HostMatrix qkv2(act, t, qkv.view.cols);
      qkv2.CopyFrom(qkv);
      std::vector<int32_t> positions = {0, 1, 2, 7, 100, 511, 3, 4, 5};
      const int qn = norm == model::QkNormKind::kFull ? heads * d : d;
      const int kn = norm == model::QkNormKind::kFull ? kv_heads * d : d;
      std::vector<float> qw(qn), kw(kn);
      for (float& w : qw) w = std::normal_distribution<float>(1.f, 0.1f)(rng_);
      for (float& w : kw) w = std::normal_distribution<float>(1.f, 0.1f)(rng_);
      auto args = [&](HostMatrix& m) {
        QkNormRopeArgs a;
        a.q = m.view.ColRange(0, heads * d);
        a.k = m.view.ColRange(heads * d, kv_heads * d);
        a.positions = positions.data();
        a.num_tokens = t;
        a.num_heads = heads;
        a.num_kv_heads = kv_heads;
        a.head_dim = d;
        a.norm = norm;
        a.q_norm_weight = qw.data();
        a.k_norm_weight = kw.data();
        a.rope_theta = 1e6f;
        return a;
      };
      ASSERT_TRUE(cpu_->QkNormRope(args(qkv), {}).ok());
      ASSERT_TRUE(ref_.QkNormRope(args(qkv2), {}).ok());
      EXPECT_TRUE(Equal(qkv, qkv2, t));
    }
  }
}

TEST_P(CpuOpsTest, RouterTopKMatchesReferenceExactly) {
  struct Case {
    int experts, k;
    model::RouterKind kind;
    bool renorm;
    float top_p;
  };
  const Case cases[] = {
      {8, 1, model::RouterKind::kSoftmaxTopK, true, 0.f},
      {8, 2, model::RouterKind::kSoftmaxTopK, false, 0.f},
      {64, 8, model::RouterKind::kSoftmaxTopK, true, 0.f},
      {128, 8, model::RouterKind::kSoftmaxTopK, true, 0.5f},
      {64, 8, model::RouterKind::kSoftmaxTopK, false, 0.3f},
      {8, 2, model::RouterKind::kTopKSoftmax, true, 0.f},
  };
  for (const Case& c : cases) {
    for (DType act : {DType::kF32, DType::kBF16}) {
      const int t = 37;
      HostMatrix logits(act, t, c.experts);
      logits.Randomize(rng_, 2.f);
      // Ties: equal logits go to the lower id.
      logits.Set(0, 3, 5.f);
      logits.Set(0, 1, 5.f);
      std::vector<int32_t> ids_got(t * c.k), ids_want(t * c.k);
      std::vector<float> w_got(t * c.k), w_want(t * c.k);
      auto args = [&](int32_t* ids, float* w) {
        RouterTopKArgs a;
        a.logits = logits.view;
        a.num_tokens = t;
        a.num_experts = c.experts;
        a.top_k = c.k;
        a.kind = c.kind;
        a.renormalize = c.renorm;
        a.top_p = c.top_p;
        a.expert_ids = ids;
        a.expert_weights = w;
        return a;
      };
      ASSERT_TRUE(cpu_->RouterTopK(args(ids_got.data(), w_got.data()), {}).ok());
      ASSERT_TRUE(ref_.RouterTopK(args(ids_want.data(), w_want.data()), {}).ok());
      EXPECT_EQ(ids_got, ids_want);
      EXPECT_EQ(w_got, w_want);
      if (c.top_p > 0.f) {
        EXPECT_NE(std::count(ids_got.begin(), ids_got.end(), -1), 0) << "top-p dropped nothing";
      }
    }
  }
}

TEST_P(CpuOpsTest, PermuteAndCombineMatchReferenceExactly) {
  for (int t : {0, 1, 13, 100}) {
    for (int k : {1, 2, 8}) {
      const int experts = 16, h = 40;
      std::vector<int32_t> ids(t * k);
      for (int i = 0; i < t; ++i) {
        // Distinct experts per token; some slots -1 (fewer than k experts); token 0 has none.
        std::vector<int32_t> perm(experts);
        std::iota(perm.begin(), perm.end(), 0);
        std::shuffle(perm.begin(), perm.end(), rng_);
        for (int j = 0; j < k; ++j) {
          const bool drop = i == 0 || (j > 0 && rng_() % 4 == 0);
          ids[i * k + j] = drop ? -1 : perm[j] % 12;  // experts 12..15 never used
        }
      }
      HostMatrix x(DType::kBF16, t, h);
      x.Randomize(rng_);
      const int cap = std::max(t * k, 1);
      HostMatrix rows_got(DType::kBF16, cap, h), rows_want(DType::kBF16, cap, h);
      std::vector<int32_t> off_got(experts + 1), off_want(experts + 1), r2t_got(cap), r2t_want(cap),
          s2r_got(cap), s2r_want(cap);
      auto permute = [&](HostMatrix& rows, int32_t* off, int32_t* r2t, int32_t* s2r) {
        return PermuteArgs{x.view, ids.data(), t, k, experts, rows.view, off, r2t, s2r};
      };
      ASSERT_TRUE(
          cpu_->Permute(permute(rows_got, off_got.data(), r2t_got.data(), s2r_got.data()), {})
              .ok());
      ASSERT_TRUE(
          ref_.Permute(permute(rows_want, off_want.data(), r2t_want.data(), s2r_want.data()), {})
              .ok());
      EXPECT_EQ(off_got, off_want);
      const int total = off_want[experts];
      EXPECT_TRUE(Equal(rows_got, rows_want, total));
      EXPECT_TRUE(std::equal(r2t_got.begin(), r2t_got.begin() + total, r2t_want.begin()));
      EXPECT_TRUE(std::equal(s2r_got.begin(), s2r_got.begin() + t * k, s2r_want.begin()));

      for (bool shared : {false, true}) {
        for (DType act : {DType::kF32, DType::kBF16}) {
          HostMatrix y_rows(act, cap, h), sh(act, t, h), gate(act, t, 1);
          y_rows.Randomize(rng_);
          sh.Randomize(rng_);
          gate.Randomize(rng_);
          std::vector<float> weights(t * k);
          for (float& w : weights) w = std::uniform_real_distribution<float>(0.f, 1.f)(rng_);
          HostMatrix got(act, t, h), want(act, t, h);
          auto combine = [&](HostMatrix& out) {
            UnpermuteCombineArgs a;
            a.y_rows = y_rows.view;
            a.slot_to_row = s2r_want.data();
            a.expert_weights = weights.data();
            a.num_tokens = t;
            a.top_k = k;
            if (shared) {
              a.shared = sh.view;
              a.shared_gate = gate.view;
            }
            a.out = out.view;
            return a;
          };
          ASSERT_TRUE(cpu_->UnpermuteCombine(combine(got), {}).ok());
          ASSERT_TRUE(ref_.UnpermuteCombine(combine(want), {}).ok());
          EXPECT_TRUE(Equal(got, want, t));
        }
      }
    }
  }
}

TEST_P(CpuOpsTest, EmbedGatherKvWriteMatchReferenceExactly) {
  for (DType table_dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    FakeTensor table("embed", table_dtype, 50, 24, rng_, 1.f);
    auto packed_cpu = cpu_->PackEmbedding(table.entry);
    auto packed_ref = ref_.PackEmbedding(table.entry);
    ASSERT_TRUE(packed_cpu.ok() && packed_ref.ok());
    for (DType act : {DType::kF32, DType::kBF16}) {
      std::vector<int32_t> ids = {0, 49, 7, 7, 3};
      HostMatrix got(act, 5, 24), want(act, 5, 24);
      ASSERT_TRUE(cpu_->Embed(EmbedArgs{ids.data(), 5, packed_cpu->get(), got.view}, {}).ok());
      ASSERT_TRUE(ref_.Embed(EmbedArgs{ids.data(), 5, packed_ref->get(), want.view}, {}).ok());
      EXPECT_TRUE(Equal(got, want, 5));

      std::vector<int32_t> idx = {4, 0, 2};
      HostMatrix g_got(act, 3, 24), g_want(act, 3, 24);
      ASSERT_TRUE(cpu_->GatherRows(GatherRowsArgs{got.view, idx.data(), 3, g_got.view}, {}).ok());
      ASSERT_TRUE(ref_.GatherRows(GatherRowsArgs{want.view, idx.data(), 3, g_want.view}, {}).ok());
      EXPECT_TRUE(Equal(g_got, g_want, 3));

      HostMatrix k(DType::kF32, 4, 24), v(DType::kF32, 4, 24);
      k.Randomize(rng_);
      v.Randomize(rng_);
      HostMatrix ck_got(act, 32, 24), cv_got(act, 32, 24), ck_want(act, 32, 24),
          cv_want(act, 32, 24);
      std::vector<int64_t> slots = {5, -1, 31, 0};
      ASSERT_TRUE(cpu_->KvWrite(KvWriteArgs{k.view, v.view, slots.data(), 4,
                                            KvCacheView{ck_got.view, cv_got.view, 16}},
                                {})
                      .ok());
      ASSERT_TRUE(ref_.KvWrite(KvWriteArgs{k.view, v.view, slots.data(), 4,
                                           KvCacheView{ck_want.view, cv_want.view, 16}},
                               {})
                      .ok());
      EXPECT_TRUE(Equal(ck_got, ck_want, 32));
      EXPECT_TRUE(Equal(cv_got, cv_want, 32));
    }
  }
  // Bad ids are errors, not crashes.
  FakeTensor table("embed", DType::kBF16, 10, 8, rng_, 1.f);
  auto packed = cpu_->PackEmbedding(table.entry);
  HostMatrix out(DType::kBF16, 1, 8);
  int32_t bad = 10;
  EXPECT_FALSE(cpu_->Embed(EmbedArgs{&bad, 1, packed->get(), out.view}, {}).ok());
}

// A ragged batch: a prefill chunk that continues a cached prefix, a fresh prompt, decodes.
struct AttnSeq {
  int cached;  // positions already in the cache
  int queries;
};

TEST_P(CpuOpsTest, AttentionMatchesReference) {
  const CpuIsa isa = GetParam();
  const int heads = 8, kv_heads = 2, d = 64, bs = 16;
  for (int window : {0, 20}) {
    for (DType act : {DType::kF32, DType::kBF16}) {
      const std::vector<AttnSeq> seqs = {{0, 37}, {100, 5}, {7, 1}, {0, 1}, {300, 1}, {16, 16}};
      const int max_blocks = 32;
      const int num_blocks = static_cast<int>(seqs.size()) * max_blocks;
      HostMatrix kc(act, num_blocks * bs, kv_heads * d), vc(act, num_blocks * bs, kv_heads * d);
      kc.Randomize(rng_);
      vc.Randomize(rng_);
      // Block tables: a random permutation of the blocks.
      std::vector<int32_t> perm(num_blocks);
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), rng_);
      std::vector<int32_t> tables(perm.begin(), perm.end());
      std::vector<int32_t> query_start = {0}, positions;
      for (const AttnSeq& s : seqs) {
        for (int i = 0; i < s.queries; ++i) positions.push_back(s.cached + i);
        query_start.push_back(static_cast<int32_t>(positions.size()));
      }
      const int t = static_cast<int>(positions.size());
      HostMatrix q(act, t, heads * d);
      q.Randomize(rng_);
      HostMatrix got(act, t, heads * d), want(act, t, heads * d);
      auto args = [&](HostMatrix& out) {
        AttentionArgs a;
        a.q = q.view;
        a.cache = KvCacheView{kc.view, vc.view, bs};
        a.query_start = query_start.data();
        a.positions = positions.data();
        a.block_tables = tables.data();
        a.max_blocks_per_seq = max_blocks;
        a.num_seqs = static_cast<int>(seqs.size());
        a.num_tokens = t;
        a.num_heads = heads;
        a.num_kv_heads = kv_heads;
        a.head_dim = d;
        a.scale = 0.125f;
        a.sliding_window = window;
        a.out = out.view;
        return a;
      };
      ASSERT_TRUE(cpu_->Attention(args(got), {}).ok());
      ASSERT_TRUE(ref_.Attention(args(want), {}).ok());
      SCOPED_TRACE(::testing::Message() << "window=" << window << " act=" << DTypeName(act));
      if (isa == CpuIsa::kScalar) {
        EXPECT_TRUE(Equal(got, want, t));
      } else {
        EXPECT_TRUE(Near(got, want, t, ToleranceFor(act, isa)));
      }
    }
  }
}

TEST_P(CpuOpsTest, AttentionOddHeadDim) {
  const int heads = 3, kv_heads = 1, d = 40, bs = 4;
  HostMatrix kc(DType::kF32, 64, d), vc(DType::kF32, 64, d);
  kc.Randomize(rng_);
  vc.Randomize(rng_);
  std::vector<int32_t> tables(16);
  std::iota(tables.begin(), tables.end(), 0);
  std::vector<int32_t> query_start = {0, 6}, positions = {20, 21, 22, 23, 24, 25};
  HostMatrix q(DType::kF32, 6, heads * d);
  q.Randomize(rng_);
  HostMatrix got(DType::kF32, 6, heads * d), want(DType::kF32, 6, heads * d);
  auto args = [&](HostMatrix& out) {
    AttentionArgs a;
    a.q = q.view;
    a.cache = KvCacheView{kc.view, vc.view, bs};
    a.query_start = query_start.data();
    a.positions = positions.data();
    a.block_tables = tables.data();
    a.max_blocks_per_seq = 16;
    a.num_seqs = 1;
    a.num_tokens = 6;
    a.num_heads = heads;
    a.num_kv_heads = kv_heads;
    a.head_dim = d;
    a.scale = 0.2f;
    a.out = out.view;
    return a;
  };
  ASSERT_TRUE(cpu_->Attention(args(got), {}).ok());
  ASSERT_TRUE(ref_.Attention(args(want), {}).ok());
  EXPECT_TRUE(Near(got, want, 6, ToleranceFor(DType::kF32, GetParam())));
}

INSTANTIATE_TEST_SUITE_P(Isas, CpuOpsTest, ::testing::ValuesIn(SupportedIsas()),
                         [](const auto& info) { return IsaParamName(info.param); });

}  // namespace
}  // namespace moe::engine::cpu::testing
