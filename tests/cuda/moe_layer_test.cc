// The whole GPU MoE layer (router -> permute maps -> gate+up GEMM gathering A through
// row_to_token -> down GEMM -> combine with a gated shared expert) against the same chain of
// CPU reference ops. Label `gpu`; skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "core/bf16.h"
#include "core/tensor_view.h"
#include "core/thread_pool.h"
#include "cuda/kernels/grouped_gemm.h"
#include "cuda/kernels/moe_index_math.h"
#include "cuda/kernels/permute.h"
#include "cuda/kernels/router_topk.h"
#include "cuda/kernels/unpermute_combine.h"
#include "engine/cpu/reference_ops.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/cuda/expert_weights.h"
#include "tests/cuda/moe_kernel_cases.h"

namespace moe::cuda {
namespace {

using testing::DeviceBuffer;

struct LayerCase {
  testing::MoeModelShape shape;
  int tokens;
  float top_p;
};

void RunLayer(const LayerCase& c, uint64_t seed) {
  const int tokens = c.tokens, experts = c.shape.num_experts, top_k = c.shape.top_k;
  const int hidden = c.shape.hidden, inter = c.shape.intermediate;
  SCOPED_TRACE(std::string(c.shape.name) + " T=" + std::to_string(tokens) +
               " top_p=" + std::to_string(c.top_p));
  testing::Experts& w = testing::ExpertsFor(experts, hidden, inter);
  const std::vector<Bf16> x = testing::RandomBf16(static_cast<size_t>(tokens) * hidden, 1.f, seed);
  const std::vector<float> logits =
      testing::RandomF32(static_cast<size_t>(tokens) * experts, 3.f, seed + 1);
  const std::vector<Bf16> shared =
      testing::RandomBf16(static_cast<size_t>(tokens) * hidden, 1.f, seed + 2);
  const std::vector<float> shared_gate = testing::RandomF32(tokens, 2.f, seed + 3);
  const int64_t slots = static_cast<int64_t>(tokens) * top_k;
  const int64_t capacity = PermuteRowCapacity(tokens, top_k, experts, 1);

  // GPU chain.
  DeviceBuffer<Bf16> d_x(x), d_shared(shared);
  DeviceBuffer<float> d_logits(logits), d_gate(shared_gate), d_weights(slots);
  DeviceBuffer<int32_t> d_ids(slots), d_offsets(experts + 1), d_row_to_token(capacity),
      d_slot_to_row(slots);
  DeviceBuffer<Bf16> d_h(capacity * inter), d_y(capacity * hidden), d_out(tokens * hidden);
  RouterTopKProblem router{.num_tokens = tokens,
                           .num_experts = experts,
                           .top_k = top_k,
                           .logits_dtype = DType::kF32,
                           .top_p = c.top_p};
  ASSERT_EQ(RouterTopK(router, {d_logits.get(), d_ids.get(), d_weights.get()}, nullptr),
            cudaSuccess);
  PermuteProblem permute{
      .num_tokens = tokens, .top_k = top_k, .num_experts = experts, .row_bytes = hidden * 2};
  DeviceBuffer<uint8_t> ws(PermuteWorkspaceSize(permute));
  ASSERT_EQ(Permute(permute,
                    {.x = d_x.get(),
                     .expert_ids = d_ids.get(),
                     .rows = nullptr,
                     .expert_offsets = d_offsets.get(),
                     .row_to_token = d_row_to_token.get(),
                     .slot_to_row = d_slot_to_row.get()},
                    ws.get(), ws.size(), nullptr),
            cudaSuccess);
  GroupedGemmProblem up{.num_experts = experts,
                        .row_capacity = capacity,
                        .n = 2 * inter,
                        .k = hidden,
                        .epilogue = GroupedGemmEpilogue::kSwiGlu};
  ASSERT_EQ(GroupedGemm(up,
                        {.a = d_x.get(),
                         .a_row_index = d_row_to_token.get(),
                         .weights = w.d_gate_up_packed.get(),
                         .expert_offsets = d_offsets.get(),
                         .out = d_h.get()},
                        nullptr, 0, nullptr),
            cudaSuccess);
  GroupedGemmProblem down{
      .num_experts = experts, .row_capacity = capacity, .n = hidden, .k = inter};
  ASSERT_EQ(GroupedGemm(down,
                        {.a = d_h.get(),
                         .weights = w.d_down.get(),
                         .expert_offsets = d_offsets.get(),
                         .out = d_y.get()},
                        nullptr, 0, nullptr),
            cudaSuccess);
  UnpermuteCombineProblem combine{
      .num_tokens = tokens, .top_k = top_k, .hidden = hidden, .dtype = DType::kBF16};
  ASSERT_EQ(UnpermuteCombine(combine,
                             {.y_rows = d_y.get(),
                              .slot_to_row = d_slot_to_row.get(),
                              .expert_weights = d_weights.get(),
                              .shared = d_shared.get(),
                              .shared_gate = d_gate.get(),
                              .out = d_out.get()},
                             nullptr),
            cudaSuccess);
  MOE_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<int32_t> ids = d_ids.Download();
  const std::vector<float> weights = d_weights.Download();
  const std::vector<Bf16> out = d_out.Download();

  // CPU chain. The router is checked on its own (ids exactly unless a top-p cut is within
  // rounding); the rest runs on the GPU's routing so a boundary flip cannot cascade.
  std::vector<int32_t> ref_ids(slots);
  std::vector<float> ref_weights(slots);
  engine::RouterTopKArgs r;
  r.logits =
      TensorView::Contiguous(const_cast<float*>(logits.data()), DType::kF32, tokens, experts);
  r.num_tokens = tokens;
  r.num_experts = experts;
  r.top_k = top_k;
  r.top_p = c.top_p;
  r.expert_ids = ref_ids.data();
  r.expert_weights = ref_weights.data();
  engine::cpu::ref::RouterTopK(r);
  if (c.top_p == 0.f) {
    ASSERT_EQ(ids, ref_ids);
  }

  std::vector<int32_t> offsets(experts + 1), row_to_token(std::max<int64_t>(slots, 1)),
      slot_to_row(std::max<int64_t>(slots, 1));
  std::vector<Bf16> rows(std::max<int64_t>(slots, 1) * hidden);
  engine::PermuteArgs p;
  p.x = TensorView::Contiguous(const_cast<Bf16*>(x.data()), DType::kBF16, tokens, hidden);
  p.expert_ids = ids.data();
  p.num_tokens = tokens;
  p.top_k = top_k;
  p.num_experts = experts;
  p.rows = TensorView::Contiguous(rows.data(), DType::kBF16, slots, hidden);
  p.expert_offsets = offsets.data();
  p.row_to_token = row_to_token.data();
  p.slot_to_row = slot_to_row.data();
  engine::cpu::ref::Permute(p);
  const int32_t total = offsets.back();
  static ThreadPool pool(std::max(1u, std::thread::hardware_concurrency()));
  const auto ref_w = w.Reference();
  std::vector<Bf16> h(std::max(total, 1) * static_cast<size_t>(inter));
  std::vector<Bf16> y(std::max(total, 1) * static_cast<size_t>(hidden));
  engine::cpu::ref::GroupedGemmSwiGlu(
      TensorView::Contiguous(rows.data(), DType::kBF16, total, hidden), offsets.data(), ref_w,
      TensorView::Contiguous(h.data(), DType::kBF16, total, inter), &pool);
  engine::cpu::ref::GroupedGemm(
      TensorView::Contiguous(h.data(), DType::kBF16, total, inter), offsets.data(), ref_w,
      TensorView::Contiguous(y.data(), DType::kBF16, total, hidden), &pool);
  std::vector<Bf16> want(static_cast<size_t>(tokens) * hidden);
  engine::UnpermuteCombineArgs u;
  u.y_rows = TensorView::Contiguous(y.data(), DType::kBF16, total, hidden);
  u.slot_to_row = slot_to_row.data();
  u.expert_weights = weights.data();
  u.num_tokens = tokens;
  u.top_k = top_k;
  u.shared = TensorView::Contiguous(const_cast<Bf16*>(shared.data()), DType::kBF16, tokens, hidden);
  u.shared_gate =
      TensorView::Contiguous(const_cast<float*>(shared_gate.data()), DType::kF32, tokens, 1);
  u.out = TensorView::Contiguous(want.data(), DType::kBF16, tokens, hidden);
  engine::cpu::ref::UnpermuteCombine(u, &pool);

  // Two bf16 roundings (h, y) that may each differ by an ulp, then a weighted sum.
  EXPECT_TRUE(testing::AllClose(
      static_cast<int64_t>(want.size()),
      [&](int64_t i) { return std::pair<float, float>(ToFloat(out[i]), ToFloat(want[i])); }, 2e-2,
      2e-2, "MoE layer output"));
}

TEST(MoeLayerGpuTest, MatchesReferenceChain) {
  MOE_SKIP_IF_NO_GPU();
  uint64_t seed = 1;
  // One layer: gate+up and down, 3 H F multiply-adds per routed row (8 per token).
  auto affordable = [](const testing::MoeModelShape& m, int tokens) {
    return testing::EmulationAffordable(tokens * 8 * 3.0 * m.hidden * m.intermediate);
  };
  for (int tokens : {0, 1, 7, 64, 512}) {
    if (!affordable(testing::kBenchPreset, tokens)) continue;
    RunLayer({testing::kBenchPreset, tokens, 0.f}, seed++);
    RunLayer({testing::kBenchPreset, tokens, 0.7f}, seed++);
  }
  for (int tokens : {1, 7, 64}) {
    if (affordable(testing::kQwen3_30B_A3B, tokens)) {
      RunLayer({testing::kQwen3_30B_A3B, tokens, 0.f}, seed++);
    }
  }
  // Mixtral's experts are 2.8 GB of bf16: GPU only.
  if (!testing::kEmulated) {
    for (int tokens : {1, 7}) RunLayer({testing::kMixtral8x7B, tokens, 0.f}, seed++);
  }
}

}  // namespace
}  // namespace moe::cuda
