// Bit-exact batch invariance (DESIGN.md §4) of the optimized CPU ops on every ISA path: a row's
// output is identical alone, in batches of 7 and 64 with random other rows, in any row order,
// and with 1 or 2 threads.
#include <algorithm>
#include <numeric>

#include "tests/engine/cpu/cpu_test_util.h"

namespace moe::engine::cpu::testing {
namespace {

constexpr int kHidden = 256;
constexpr int kExperts = 16;
constexpr int kTopK = 4;
constexpr int kInter = 160;

// One MoE layer's weights, packed into a backend.
struct MoeWeights {
  std::vector<std::unique_ptr<FakeTensor>> tensors;
  std::unique_ptr<PackedLinear> router;
  std::unique_ptr<PackedLinear> dense;
  std::unique_ptr<PackedExperts> experts;
};

struct MoeSources {
  std::vector<std::unique_ptr<FakeTensor>> tensors;
  LinearSource router, dense;
  ExpertsSource experts;

  explicit MoeSources(std::mt19937& rng) {
    auto add = [&](int rows, int cols, float stddev) {
      tensors.push_back(std::make_unique<FakeTensor>("t", DType::kBF16, rows, cols, rng, stddev));
      return &tensors.back()->entry;
    };
    router.row_blocks = {add(kExperts, kHidden, 0.2f)};
    dense.row_blocks = {add(300, kHidden, 0.05f)};
    for (int e = 0; e < kExperts; ++e) {
      experts.gate.push_back(add(kInter, kHidden, 0.08f));
      experts.up.push_back(add(kInter, kHidden, 0.08f));
      experts.down.push_back(add(kHidden, kInter, 0.08f));
    }
  }
};

struct Packed {
  std::unique_ptr<PackedLinear> router, dense;
  std::unique_ptr<PackedExperts> experts;
};

Packed Pack(Backend& b, const MoeSources& s) {
  Packed p;
  p.router = std::move(b.PackLinear(s.router)).value();
  p.dense = std::move(b.PackLinear(s.dense)).value();
  p.experts = std::move(b.PackExperts(s.experts)).value();
  return p;
}

// Runs dense Linear and the whole MoE block on `x`; returns (dense out, moe out).
std::pair<HostMatrix, HostMatrix> RunLayer(Backend& b, const Packed& p, const HostMatrix& x,
                                           float top_p) {
  const int t = static_cast<int>(x.view.rows);
  const DType act = x.view.dtype;
  const int cap = std::max(t * kTopK, 1);
  HostMatrix dense(act, t, 300), logits(act, t, kExperts), rows(act, cap, kHidden),
      h(act, cap, kInter), y(act, cap, kHidden), out(act, t, kHidden);
  std::vector<int32_t> ids(cap), offsets(kExperts + 1), r2t(cap), s2r(cap);
  std::vector<float> weights(cap);
  EXPECT_TRUE(b.Linear(LinearArgs{x.view, p.dense.get(), dense.view}, {}).ok());
  EXPECT_TRUE(b.Linear(LinearArgs{x.view, p.router.get(), logits.view}, {}).ok());
  RouterTopKArgs r;
  r.logits = logits.view;
  r.num_tokens = t;
  r.num_experts = kExperts;
  r.top_k = kTopK;
  r.top_p = top_p;
  r.expert_ids = ids.data();
  r.expert_weights = weights.data();
  EXPECT_TRUE(b.RouterTopK(r, {}).ok());
  EXPECT_TRUE(b.Permute(PermuteArgs{x.view, ids.data(), t, kTopK, kExperts, rows.view,
                                    offsets.data(), r2t.data(), s2r.data()},
                        {})
                  .ok());
  EXPECT_TRUE(b.GroupedGemmSwiGlu(
                   GroupedGemmSwiGluArgs{rows.view, offsets.data(), p.experts.get(), h.view}, {})
                  .ok());
  EXPECT_TRUE(
      b.GroupedGemm(GroupedGemmArgs{h.view, offsets.data(), p.experts.get(), y.view}, {}).ok());
  UnpermuteCombineArgs c;
  c.y_rows = y.view;
  c.slot_to_row = s2r.data();
  c.expert_weights = weights.data();
  c.num_tokens = t;
  c.top_k = kTopK;
  c.out = out.view;
  EXPECT_TRUE(b.UnpermuteCombine(c, {}).ok());
  return {std::move(dense), std::move(out)};
}

BackendLimits Limits() {
  BackendLimits l = DefaultLimits();
  l.hidden = kHidden;
  l.num_experts = kExperts;
  l.top_k = kTopK;
  l.max_intermediate = kInter;
  return l;
}

class BatchInvarianceTest : public ::testing::TestWithParam<CpuIsa> {};

TEST_P(BatchInvarianceTest, MoeLayerRowsIndependentOfBatch) {
  std::mt19937 rng(7);
  const MoeSources sources(rng);
  auto one = MakeCpuBackend(GetParam(), 1);
  auto two = MakeCpuBackend(GetParam(), 2);
  ASSERT_TRUE(one->Reserve(Limits()).ok());
  ASSERT_TRUE(two->Reserve(Limits()).ok());
  const Packed p1 = Pack(*one, sources);
  const Packed p2 = Pack(*two, sources);
  for (DType act : {DType::kBF16, DType::kF32}) {
    for (float top_p : {0.f, 0.6f}) {
      SCOPED_TRACE(::testing::Message() << "act=" << DTypeName(act) << " top_p=" << top_p);
      HostMatrix target(act, 1, kHidden);
      target.Randomize(rng);
      const auto [dense_alone, moe_alone] = RunLayer(*one, p1, target, top_p);
      for (int batch : {1, 7, 64}) {
        for (int trial = 0; trial < 2; ++trial) {
          HostMatrix x(act, batch, kHidden);
          x.Randomize(rng);
          const int at = static_cast<int>(rng() % batch);
          for (int c = 0; c < kHidden; ++c) x.Set(at, c, target.Get(0, c));
          Backend& b = trial == 0 ? static_cast<Backend&>(*two) : static_cast<Backend&>(*one);
          const auto [dense, moe] = RunLayer(b, trial == 0 ? p2 : p1, x, top_p);
          SCOPED_TRACE(::testing::Message() << "batch=" << batch << " row=" << at
                                            << " threads=" << (trial == 0 ? 2 : 1));
          EXPECT_TRUE(BitEqualRows(dense.view, at, dense_alone.view, 0));
          EXPECT_TRUE(BitEqualRows(moe.view, at, moe_alone.view, 0));
        }
      }
    }
  }
}

TEST_P(BatchInvarianceTest, RowOrderDoesNotMatter) {
  std::mt19937 rng(8);
  const MoeSources sources(rng);
  auto cpu = MakeCpuBackend(GetParam(), 2);
  ASSERT_TRUE(cpu->Reserve(Limits()).ok());
  const Packed p = Pack(*cpu, sources);
  const int t = 40;
  HostMatrix x(DType::kBF16, t, kHidden);
  x.Randomize(rng);
  std::vector<int> perm(t);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  HostMatrix shuffled(DType::kBF16, t, kHidden);
  for (int r = 0; r < t; ++r) {
    for (int c = 0; c < kHidden; ++c) shuffled.Set(r, c, x.Get(perm[r], c));
  }
  const auto [dense_a, moe_a] = RunLayer(*cpu, p, x, 0.f);
  const auto [dense_b, moe_b] = RunLayer(*cpu, p, shuffled, 0.f);
  for (int r = 0; r < t; ++r) {
    EXPECT_TRUE(BitEqualRows(dense_b.view, r, dense_a.view, perm[r]));
    EXPECT_TRUE(BitEqualRows(moe_b.view, r, moe_a.view, perm[r]));
  }
}

// Attention: one sequence's queries alone, next to other sequences, and arriving in chunks.
TEST_P(BatchInvarianceTest, AttentionRowsIndependentOfBatchAndChunking) {
  std::mt19937 rng(9);
  const int heads = 8, kv_heads = 2, d = 64, bs = 16, max_blocks = 24;
  const int num_seqs = 9;
  auto one = MakeCpuBackend(GetParam(), 1);
  auto two = MakeCpuBackend(GetParam(), 2);
  ASSERT_TRUE(one->Reserve(DefaultLimits()).ok());
  ASSERT_TRUE(two->Reserve(DefaultLimits()).ok());
  for (DType act : {DType::kBF16, DType::kF32}) {
    HostMatrix kc(act, num_seqs * max_blocks * bs, kv_heads * d),
        vc(act, num_seqs * max_blocks * bs, kv_heads * d);
    kc.Randomize(rng);
    vc.Randomize(rng);
    std::vector<int32_t> tables(num_seqs * max_blocks);
    std::iota(tables.begin(), tables.end(), 0);
    std::shuffle(tables.begin(), tables.end(), rng);
    // Target: sequence 0, positions [0, 50) (a prompt); its q rows.
    const int len = 50;
    HostMatrix q_target(act, len, heads * d);
    q_target.Randomize(rng);

    auto run = [&](Backend& b, const std::vector<int>& seq_order,
                   const std::vector<std::pair<int, int>>& ranges, HostMatrix* out_target) {
      // ranges[s] = (first position, count) of sequence s this step; the target's rows come
      // from q_target, others random.
      std::vector<int32_t> query_start = {0}, positions, table;
      std::vector<int> target_rows;
      HostMatrix q(act, 512, heads * d);
      q.Randomize(rng);
      int row = 0;
      for (int s : seq_order) {
        const auto [first, count] = ranges[s];
        for (int i = 0; i < count; ++i, ++row) {
          positions.push_back(first + i);
          if (s == 0) {
            for (int c = 0; c < heads * d; ++c) q.Set(row, c, q_target.Get(first + i, c));
            target_rows.push_back(row);
          }
        }
        query_start.push_back(row);
        table.insert(table.end(), tables.begin() + s * max_blocks,
                     tables.begin() + (s + 1) * max_blocks);
      }
      HostMatrix out(act, std::max(row, 1), heads * d);
      AttentionArgs a;
      a.q = q.view.RowRange(0, row);
      a.cache = KvCacheView{kc.view, vc.view, bs};
      a.query_start = query_start.data();
      a.positions = positions.data();
      a.block_tables = table.data();
      a.max_blocks_per_seq = max_blocks;
      a.num_seqs = static_cast<int>(seq_order.size());
      a.num_tokens = row;
      a.num_heads = heads;
      a.num_kv_heads = kv_heads;
      a.head_dim = d;
      a.scale = 0.125f;
      a.out = out.view.RowRange(0, row);
      ASSERT_TRUE(b.Attention(a, {}).ok());
      const int first = ranges[0].first;
      for (size_t i = 0; i < target_rows.size(); ++i) {
        for (int c = 0; c < heads * d; ++c) {
          out_target->Set(first + static_cast<int>(i), c, out.Get(target_rows[i], c));
        }
      }
    };
    std::vector<std::pair<int, int>> ranges(num_seqs);
    ranges[0] = {0, len};
    HostMatrix alone(act, len, heads * d);
    run(*one, {0}, ranges, &alone);
    // With 8 other sequences (prefills and decodes) in a shuffled order, on 2 threads.
    for (int s = 1; s < num_seqs; ++s) {
      ranges[s] = {static_cast<int>(rng() % 300), 1 + static_cast<int>(rng() % 40)};
    }
    std::vector<int> order(num_seqs);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    HostMatrix batched(act, len, heads * d);
    run(*two, order, ranges, &batched);
    // In chunks of 7, 1 and the rest, each with a few other sequences.
    HostMatrix chunked(act, len, heads * d);
    for (auto [first, count] : std::vector<std::pair<int, int>>{{0, 7}, {7, 1}, {8, 42}}) {
      ranges[0] = {first, count};
      run(*two, {3, 0, 5}, ranges, &chunked);
    }
    for (int r = 0; r < len; ++r) {
      EXPECT_TRUE(BitEqualRows(batched.view, r, alone.view, r)) << DTypeName(act);
      EXPECT_TRUE(BitEqualRows(chunked.view, r, alone.view, r)) << DTypeName(act);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, BatchInvarianceTest, ::testing::ValuesIn(SupportedIsas()),
                         [](const auto& info) { return IsaParamName(info.param); });

}  // namespace
}  // namespace moe::engine::cpu::testing
