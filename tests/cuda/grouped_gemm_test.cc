// GPU grouped expert GEMM (gate+up with fused SwiGLU, and down) against the CPU reference over
// the issue's shape table, with bf16 tolerances. Also checks properties that need no reference:
// every tile configuration gives bitwise identical rows (batch invariance), the fused A gather
// equals running on permuted rows, padded segments, rows outside the segments stay untouched,
// and the cuBLAS baselines agree. Label `gpu`; skips without a GPU.
#include "cuda/kernels/grouped_gemm.h"

#include <cublas_v2.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "core/tensor_view.h"
#include "core/thread_pool.h"
#include "cuda/kernels/grouped_gemm_cublas.h"
#include "cuda/kernels/moe_index_math.h"
#include "engine/cpu/reference_ops.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/cuda/expert_weights.h"
#include "tests/cuda/moe_kernel_cases.h"

namespace moe::cuda {
namespace {

using testing::DeviceBuffer;
using testing::Experts;
using testing::ExpertsFor;

constexpr GroupedGemmTile kTiles[] = {GroupedGemmTile::kM16, GroupedGemmTile::kM64,
                                      GroupedGemmTile::kM128};
// Output tolerance: both sides round one f32 result to bf16; f32 sums in different orders can
// land on neighbouring bf16 values (1 ulp = 2^-8 .. 2^-7 relative).
constexpr double kRtol = 1.0 / 128;
constexpr double kAtol = 1e-3;

ThreadPool& Pool() {
  static ThreadPool pool(std::max(1u, std::thread::hardware_concurrency()));
  return pool;
}

// Rows to check against the reference: the first and last row of every segment plus an even
// spread, within a multiply-add budget.
std::vector<int32_t> SampleRows(const std::vector<int32_t>& offsets, int hidden, int inter) {
  const int32_t total = offsets.back();
  const int64_t budget = std::clamp<int64_t>(1500000000LL / (3LL * hidden * inter), 16, 512);
  std::set<int32_t> rows;
  for (size_t e = 0; e + 1 < offsets.size(); ++e) {
    if (offsets[e + 1] > offsets[e]) {
      rows.insert(offsets[e]);
      rows.insert(offsets[e + 1] - 1);
    }
  }
  const int64_t step = std::max<int64_t>(1, total / budget);
  for (int64_t r = 0; r < total; r += step) rows.insert(static_cast<int32_t>(r));
  return {rows.begin(), rows.end()};
}

// Sub-problem of the sampled rows (still grouped by expert): compact offsets and row copies.
struct Sample {
  std::vector<int32_t> rows;     // indices into the full problem
  std::vector<int32_t> offsets;  // [E + 1] over the sample
};
Sample MakeSample(const std::vector<int32_t>& offsets, const std::vector<int32_t>& rows) {
  Sample s{rows, std::vector<int32_t>(offsets.size(), 0)};
  for (int32_t r : rows) {
    const int e =
        static_cast<int>(std::upper_bound(offsets.begin(), offsets.end(), r) - offsets.begin()) - 1;
    ++s.offsets[e + 1];
  }
  for (size_t e = 0; e + 1 < offsets.size(); ++e) s.offsets[e + 1] += s.offsets[e];
  return s;
}

std::vector<Bf16> GatherHostRows(const std::vector<Bf16>& m, int cols,
                                 const std::vector<int32_t>& rows) {
  std::vector<Bf16> out(rows.size() * cols);
  for (size_t i = 0; i < rows.size(); ++i) {
    std::copy_n(m.begin() + static_cast<size_t>(rows[i]) * cols, cols, out.begin() + i * cols);
  }
  return out;
}

::testing::AssertionResult Bf16Close(const std::vector<Bf16>& got, const std::vector<Bf16>& want,
                                     const std::string& what) {
  return testing::AllClose(
      static_cast<int64_t>(want.size()),
      [&](int64_t i) { return std::pair<float, float>(ToFloat(got[i]), ToFloat(want[i])); }, kAtol,
      kRtol, what);
}

bool BitwiseEqualRows(const std::vector<Bf16>& a, const std::vector<Bf16>& b, int64_t rows,
                      int cols) {
  return std::equal(a.begin(), a.begin() + rows * cols, b.begin(),
                    [](Bf16 x, Bf16 y) { return x.bits == y.bits; });
}

struct GemmRun {
  GroupedGemmEpilogue epilogue;
  GroupedGemmTile tile;
  const Bf16* a;
  const int32_t* a_row_index;
  int64_t lda;
  const Bf16* weights;
  const int32_t* offsets;
  int64_t capacity;
  int num_experts;
  int n;
  int k;
};

std::vector<Bf16> RunGemm(const GemmRun& r, int out_cols) {
  DeviceBuffer<Bf16> out(std::max<int64_t>(r.capacity, 1) * out_cols);
  out.FillBytes(0xff);  // NaN sentinel: rows the kernel must not touch stay NaN
  GroupedGemmProblem problem{.num_experts = r.num_experts,
                             .row_capacity = r.capacity,
                             .n = r.n,
                             .k = r.k,
                             .lda = r.lda,
                             .epilogue = r.epilogue,
                             .tile = r.tile};
  EXPECT_TRUE(GroupedGemmCanImplement(problem));
  GroupedGemmBuffers buffers{.a = r.a,
                             .a_row_index = r.a_row_index,
                             .weights = r.weights,
                             .expert_offsets = r.offsets,
                             .out = out.get()};
  EXPECT_EQ(GroupedGemm(problem, buffers, nullptr, 0, nullptr), cudaSuccess);
  MOE_CUDA_CHECK(cudaDeviceSynchronize());
  return out.Download();
}

void RunCase(const testing::MoeCase& c, uint64_t seed) {
  SCOPED_TRACE(c.Name());
  Experts& w = ExpertsFor(c.experts, c.hidden, c.intermediate);
  const int hidden = c.hidden, inter = c.intermediate;
  const std::vector<int32_t> ids =
      testing::RandomRouting(c.tokens, c.top_k, c.experts, seed % 3 == 0 ? 0.2 : 0.0, seed);
  const std::vector<int32_t> offsets = testing::OffsetsOfRouting(ids, c.experts);
  const int32_t total = offsets.back();
  const int64_t capacity = static_cast<int64_t>(c.tokens) * c.top_k;  // >= total
  const std::vector<Bf16> a = testing::RandomBf16(capacity * hidden, 1.f, seed);
  DeviceBuffer<Bf16> d_a(a);
  DeviceBuffer<int32_t> d_offsets(offsets);

  // gate+up with SwiGLU: every configuration, bitwise identical.
  GemmRun up_run{GroupedGemmEpilogue::kSwiGlu,
                 GroupedGemmTile::kAuto,
                 d_a.get(),
                 nullptr,
                 hidden,
                 w.d_gate_up_packed.get(),
                 d_offsets.get(),
                 capacity,
                 c.experts,
                 2 * inter,
                 hidden};
  const std::vector<Bf16> h = RunGemm(up_run, inter);
  for (GroupedGemmTile tile : kTiles) {
    up_run.tile = tile;
    const std::vector<Bf16> h_tile = RunGemm(up_run, inter);
    ASSERT_TRUE(BitwiseEqualRows(h_tile, h, total, inter))
        << "gate_up: tile " << static_cast<int>(tile) << " differs from auto";
  }
  for (int64_t i = static_cast<int64_t>(total) * inter; i < capacity * inter; ++i) {
    ASSERT_EQ(h[i].bits, 0xffff) << "gate_up wrote past R";
  }

  // down: on the GPU's h, so the two checks are independent.
  DeviceBuffer<Bf16> d_h(h);
  GemmRun down_run{GroupedGemmEpilogue::kNone,
                   GroupedGemmTile::kAuto,
                   d_h.get(),
                   nullptr,
                   inter,
                   w.d_down.get(),
                   d_offsets.get(),
                   capacity,
                   c.experts,
                   hidden,
                   inter};
  const std::vector<Bf16> y = RunGemm(down_run, hidden);
  for (GroupedGemmTile tile : kTiles) {
    down_run.tile = tile;
    ASSERT_TRUE(BitwiseEqualRows(RunGemm(down_run, hidden), y, total, hidden))
        << "down: tile " << static_cast<int>(tile) << " differs from auto";
  }

  // Reference on sampled rows.
  if (total > 0) {
    const Sample s = MakeSample(offsets, SampleRows(offsets, hidden, inter));
    const std::vector<engine::cpu::ref::ExpertMatrices> ref_w = w.Reference();
    std::vector<Bf16> a_s = GatherHostRows(a, hidden, s.rows);
    std::vector<Bf16> want_h(s.rows.size() * inter);
    engine::cpu::ref::GroupedGemmSwiGlu(
        TensorView::Contiguous(a_s.data(), DType::kBF16, s.rows.size(), hidden), s.offsets.data(),
        ref_w, TensorView::Contiguous(want_h.data(), DType::kBF16, s.rows.size(), inter), &Pool());
    EXPECT_TRUE(Bf16Close(GatherHostRows(h, inter, s.rows), want_h, "gate_up SwiGLU"));

    std::vector<Bf16> h_s = GatherHostRows(h, inter, s.rows);
    std::vector<Bf16> want_y(s.rows.size() * hidden);
    engine::cpu::ref::GroupedGemm(
        TensorView::Contiguous(h_s.data(), DType::kBF16, s.rows.size(), inter), s.offsets.data(),
        ref_w, TensorView::Contiguous(want_y.data(), DType::kBF16, s.rows.size(), hidden), &Pool());
    EXPECT_TRUE(Bf16Close(GatherHostRows(y, hidden, s.rows), want_y, "down"));
  }
}

TEST(GroupedGemmGpuTest, MatchesReferenceOverShapeTable) {
  MOE_SKIP_IF_NO_GPU();
  std::vector<testing::MoeCase> cases = testing::GemmCases();
  // Group cases by weight sizes so each expert set is generated once.
  std::stable_sort(cases.begin(), cases.end(), [](const auto& x, const auto& y) {
    return std::tie(x.hidden, x.intermediate, x.experts) <
           std::tie(y.hidden, y.intermediate, y.experts);
  });
  uint64_t seed = 1;
  for (const testing::MoeCase& c : cases) {
    RunCase(c, seed++);
    if (HasFatalFailure()) return;
  }
}

TEST(GroupedGemmGpuTest, OddSizesAndKTail) {
  MOE_SKIP_IF_NO_GPU();
  // k not a multiple of any block_k, n not a multiple of block_n, F = 8 (one interleave group).
  RunCase({"odd", 37, 8, 2, 1000, 264}, 11);
  RunCase({"odd", 5, 3, 3, 8, 8}, 12);
  RunCase({"odd", 300, 64, 8, 520, 72}, 13);
}

// Rows gathered through a_row_index (the fused permute) equal rows permuted beforehand, and a
// padded layout gives the same real rows and zero pad rows.
TEST(GroupedGemmGpuTest, GatherAndPaddingGiveTheSameRows) {
  MOE_SKIP_IF_NO_GPU();
  // Emulated: 48 rows per expert, not a multiple of the padding.
  const int tokens = testing::kEmulated ? 48 : 300, top_k = 8;
  const int experts = testing::kEmulated ? 8 : 64, hidden = testing::kEmulated ? 512 : 1024;
  const int inter = testing::kEmulated ? 256 : 512;
  Experts& w = ExpertsFor(experts, hidden, inter);
  const std::vector<int32_t> ids = testing::RandomRouting(tokens, top_k, experts, 0.1, 5);
  const std::vector<Bf16> x = testing::RandomBf16(static_cast<size_t>(tokens) * hidden, 1.f, 6);
  // Host permute (reference maps), unpadded and padded to 16.
  std::vector<int32_t> offsets(experts + 1), row_to_token(ids.size()), slot_to_row(ids.size());
  std::vector<Bf16> rows(ids.size() * hidden);
  engine::PermuteArgs p;
  p.x = TensorView::Contiguous(const_cast<Bf16*>(x.data()), DType::kBF16, tokens, hidden);
  p.expert_ids = ids.data();
  p.num_tokens = tokens;
  p.top_k = top_k;
  p.num_experts = experts;
  p.rows = TensorView::Contiguous(rows.data(), DType::kBF16, ids.size(), hidden);
  p.expert_offsets = offsets.data();
  p.row_to_token = row_to_token.data();
  p.slot_to_row = slot_to_row.data();
  engine::cpu::ref::Permute(p);
  const int32_t total = offsets.back();
  const int64_t capacity = static_cast<int64_t>(ids.size());

  DeviceBuffer<Bf16> d_rows(rows), d_x(x);
  DeviceBuffer<int32_t> d_offsets(offsets), d_row_to_token(row_to_token);
  GemmRun run{GroupedGemmEpilogue::kSwiGlu,
              GroupedGemmTile::kAuto,
              d_rows.get(),
              nullptr,
              hidden,
              w.d_gate_up_packed.get(),
              d_offsets.get(),
              capacity,
              experts,
              2 * inter,
              hidden};
  const std::vector<Bf16> h_permuted = RunGemm(run, inter);
  run.a = d_x.get();
  run.a_row_index = d_row_to_token.get();
  for (GroupedGemmTile tile : kTiles) {
    run.tile = tile;
    ASSERT_TRUE(BitwiseEqualRows(RunGemm(run, inter), h_permuted, total, inter))
        << "gathered A, tile " << static_cast<int>(tile);
  }

  // Padded: segments rounded up to 16, pad rows marked -1.
  const int align = 16;
  std::vector<int32_t> padded_offsets(experts + 1, 0);
  for (int e = 0; e < experts; ++e) {
    padded_offsets[e + 1] =
        padded_offsets[e] + static_cast<int32_t>(SegmentRows(offsets[e + 1] - offsets[e], align));
  }
  const int64_t padded_capacity = PermuteRowCapacity(tokens, top_k, experts, align);
  std::vector<int32_t> padded_map(padded_capacity, -1);
  for (int e = 0; e < experts; ++e) {
    for (int32_t i = 0; i < offsets[e + 1] - offsets[e]; ++i) {
      padded_map[padded_offsets[e] + i] = row_to_token[offsets[e] + i];
    }
  }
  DeviceBuffer<int32_t> d_padded_offsets(padded_offsets), d_padded_map(padded_map);
  run.offsets = d_padded_offsets.get();
  run.a_row_index = d_padded_map.get();
  run.capacity = padded_capacity;
  run.tile = GroupedGemmTile::kAuto;
  const std::vector<Bf16> h_padded = RunGemm(run, inter);
  for (int e = 0; e < experts; ++e) {
    const int32_t count = offsets[e + 1] - offsets[e];
    for (int32_t i = 0; i < count; ++i) {
      ASSERT_TRUE(std::equal(h_padded.begin() + (padded_offsets[e] + i) * inter,
                             h_padded.begin() + (padded_offsets[e] + i + 1) * inter,
                             h_permuted.begin() + (offsets[e] + i) * inter,
                             [](Bf16 a, Bf16 b) { return a.bits == b.bits; }))
          << "expert " << e << " row " << i;
    }
    for (int32_t r = padded_offsets[e] + count; r < padded_offsets[e + 1]; ++r) {
      for (int f = 0; f < inter; ++f) ASSERT_EQ(ToFloat(h_padded[r * inter + f]), 0.f);
    }
  }
}

// A token's rows do not depend on the batch around it (DESIGN.md §4): one token alone (decode
// tile) and the same token inside a 4096-token batch (prefill tile) give identical bits.
TEST(GroupedGemmGpuTest, RowsAreBatchInvariant) {
  MOE_SKIP_IF_NO_GPU();
  // Emulated: 512 tokens over 8 experts, still past the 64 rows per expert of the prefill tile.
  const int tokens = testing::kEmulated ? 512 : 4096, top_k = testing::kEmulated ? 2 : 8;
  const int experts = testing::kEmulated ? 8 : 128, hidden = testing::kEmulated ? 1024 : 2048;
  const int inter = testing::kEmulated ? 512 : 768;
  Experts& w = ExpertsFor(experts, hidden, inter);
  const std::vector<int32_t> ids = testing::RandomRouting(tokens, top_k, experts, 0.0, 9);
  const std::vector<Bf16> x = testing::RandomBf16(static_cast<size_t>(tokens) * hidden, 1.f, 10);
  // Row map of the full batch, and of token 0 alone.
  auto row_map = [&](int num_tokens, std::vector<int32_t>& offsets) {
    std::vector<int32_t> ids_t(ids.begin(), ids.begin() + static_cast<size_t>(num_tokens) * top_k);
    offsets = testing::OffsetsOfRouting(ids_t, experts);
    std::vector<int32_t> cursor(offsets.begin(), offsets.end() - 1), map(ids_t.size());
    for (size_t s = 0; s < ids_t.size(); ++s)
      map[cursor[ids_t[s]]++] = static_cast<int32_t>(s / top_k);
    return map;
  };
  std::vector<int32_t> offsets_all, offsets_one;
  const std::vector<int32_t> map_all = row_map(tokens, offsets_all);
  const std::vector<int32_t> map_one = row_map(1, offsets_one);
  DeviceBuffer<Bf16> d_x(x);
  DeviceBuffer<int32_t> d_off_all(offsets_all), d_map_all(map_all), d_off_one(offsets_one),
      d_map_one(map_one);
  GemmRun run{GroupedGemmEpilogue::kSwiGlu,
              GroupedGemmTile::kAuto,
              d_x.get(),
              d_map_all.get(),
              hidden,
              w.d_gate_up_packed.get(),
              d_off_all.get(),
              static_cast<int64_t>(map_all.size()),
              experts,
              2 * inter,
              hidden};
  const std::vector<Bf16> h_all = RunGemm(run, inter);
  run.a_row_index = d_map_one.get();
  run.offsets = d_off_one.get();
  run.capacity = static_cast<int64_t>(map_one.size());
  const std::vector<Bf16> h_one = RunGemm(run, inter);
  for (int j = 0; j < top_k; ++j) {
    const int e = ids[j];
    const int32_t row_one = offsets_one[e];  // token 0 is first in its expert either way
    const int32_t row_all = offsets_all[e];
    ASSERT_TRUE(std::equal(h_one.begin() + row_one * inter, h_one.begin() + (row_one + 1) * inter,
                           h_all.begin() + row_all * inter,
                           [](Bf16 a, Bf16 b) { return a.bits == b.bits; }))
        << "expert " << e;
  }
}

// The cuBLAS baselines compute the same product (to bf16 rounding) as the custom kernel.
TEST(GroupedGemmGpuTest, CublasBaselinesAgree) {
  MOE_SKIP_IF_NO_GPU();
  const int tokens = 512, top_k = 8, experts = 64, hidden = 1024, inter = 512;
  Experts& w = ExpertsFor(experts, hidden, inter);
  const std::vector<int32_t> ids = testing::RandomRouting(tokens, top_k, experts, 0.1, 3);
  const std::vector<int32_t> offsets = testing::OffsetsOfRouting(ids, experts);
  const int32_t total = offsets.back();
  const int64_t capacity = static_cast<int64_t>(ids.size());
  const std::vector<Bf16> h = testing::RandomBf16(capacity * inter, 1.f, 4);
  DeviceBuffer<Bf16> d_h(h);
  DeviceBuffer<int32_t> d_offsets(offsets);
  GemmRun run{GroupedGemmEpilogue::kNone,
              GroupedGemmTile::kAuto,
              d_h.get(),
              nullptr,
              inter,
              w.d_down.get(),
              d_offsets.get(),
              capacity,
              experts,
              hidden,
              inter};
  const std::vector<Bf16> y = RunGemm(run, hidden);

  cublasHandle_t handle;
  ASSERT_EQ(cublasCreate(&handle), CUBLAS_STATUS_SUCCESS);
  CublasGroupedGemmProblem problem{
      .num_experts = experts, .n = hidden, .k = inter, .host_expert_offsets = offsets.data()};
  DeviceBuffer<Bf16> d_y(capacity * hidden);
  CublasGroupedGemmBuffers buffers{.a = d_h.get(),
                                   .weights = w.d_down.get(),
                                   .expert_offsets = d_offsets.get(),
                                   .out = d_y.get()};
  const std::vector<Bf16> y_head(y.begin(), y.begin() + static_cast<size_t>(total) * hidden);

  const cublasStatus_t loop = CublasGemmLoop(handle, problem, buffers, nullptr);
  if (loop != CUBLAS_STATUS_SUCCESS) cublasDestroy(handle);
  ASSERT_EQ(loop, CUBLAS_STATUS_SUCCESS);
  MOE_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<Bf16> y_loop = d_y.Download();
  y_loop.resize(static_cast<size_t>(total) * hidden);
  EXPECT_TRUE(Bf16Close(y_loop, y_head, "cublas loop vs custom"));

  const size_t ws_bytes = CublasGroupedGemmWorkspaceSize(experts);
  DeviceBuffer<uint8_t> ws(ws_bytes);
  d_y.FillBytes(0);
  const cublasStatus_t grouped =
      CublasGroupedGemm(handle, problem, buffers, ws.get(), ws_bytes, nullptr);
  MOE_CUDA_CHECK(cudaDeviceSynchronize());
  cublasDestroy(handle);
  if (grouped == CUBLAS_STATUS_NOT_SUPPORTED) {
    GTEST_SKIP() << "cublasGemmGroupedBatchedEx does not support bf16 on this device";
  }
  ASSERT_EQ(grouped, CUBLAS_STATUS_SUCCESS);
  std::vector<Bf16> y_grouped = d_y.Download();
  y_grouped.resize(static_cast<size_t>(total) * hidden);
  EXPECT_TRUE(Bf16Close(y_grouped, y_head, "cublas grouped vs custom"));
}

TEST(GroupedGemmGpuTest, RejectsUnsupportedProblems) {
  GroupedGemmProblem p{.num_experts = 8,
                       .row_capacity = 16,
                       .n = 24,
                       .k = 64,
                       .epilogue = GroupedGemmEpilogue::kSwiGlu};
  EXPECT_EQ(GroupedGemm(p, {}, nullptr, 0, nullptr), cudaErrorInvalidValue);
  p.n = 32;
  EXPECT_EQ(GroupedGemm(p, {}, nullptr, 0, nullptr), cudaErrorInvalidValue) << "null buffers";
  p.row_capacity = 0;
  EXPECT_EQ(GroupedGemm(p, {}, nullptr, 0, nullptr), cudaSuccess) << "nothing to do";
}

}  // namespace
}  // namespace moe::cuda
