// GPU router top-k against the CPU reference (engine/cpu/reference_ops.h): expert ids exactly,
// weights to a few ulp, over T x E x k x scoring x logit dtype. Label `gpu`; skips without one.
#include "cuda/kernels/router_topk.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/bf16.h"
#include "core/tensor_view.h"
#include "engine/cpu/reference_ops.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/cuda/moe_kernel_cases.h"

namespace moe::cuda {
namespace {

using testing::DeviceBuffer;

struct RouterCase {
  int tokens;
  int experts;
  int top_k;
  RouterScoring scoring;
  bool renormalize;
  float top_p;
  DType dtype;
};

std::string Describe(const RouterCase& c) {
  return "T=" + std::to_string(c.tokens) + " E=" + std::to_string(c.experts) +
         " k=" + std::to_string(c.top_k) +
         (c.scoring == RouterScoring::kTopKSoftmax ? " mixtral" : " softmax") +
         (c.renormalize ? " renorm" : "") + " top_p=" + std::to_string(c.top_p) +
         (c.dtype == DType::kBF16 ? " bf16" : " f32");
}

void RunCase(const RouterCase& c, uint64_t seed) {
  SCOPED_TRACE(Describe(c));
  const size_t n = static_cast<size_t>(c.tokens) * c.experts;
  // Logits: random, plus exact ties (a token's experts copied from one another) to exercise
  // the lower-id tie break; bf16 rounding adds many more.
  std::vector<float> logits = testing::RandomF32(n, 4.f, seed);
  for (int t = 0; t < c.tokens; t += 3) {
    float* row = logits.data() + static_cast<size_t>(t) * c.experts;
    for (int e = 1; e < c.experts; e += 5) row[e] = row[e - 1];
  }
  std::vector<Bf16> logits_bf16(n);
  for (size_t i = 0; i < n; ++i) logits_bf16[i] = ToBf16(logits[i]);
  void* host_logits = c.dtype == DType::kBF16 ? static_cast<void*>(logits_bf16.data())
                                              : static_cast<void*>(logits.data());

  const size_t slots = static_cast<size_t>(c.tokens) * c.top_k;
  std::vector<int32_t> want_ids(slots);
  std::vector<float> want_weights(slots);
  engine::RouterTopKArgs ref;
  ref.logits = TensorView::Contiguous(host_logits, c.dtype, c.tokens, c.experts);
  ref.num_tokens = c.tokens;
  ref.num_experts = c.experts;
  ref.top_k = c.top_k;
  ref.kind = c.scoring == RouterScoring::kTopKSoftmax ? model::RouterKind::kTopKSoftmax
                                                      : model::RouterKind::kSoftmaxTopK;
  ref.renormalize = c.renormalize;
  ref.top_p = c.top_p;
  ref.expert_ids = want_ids.data();
  ref.expert_weights = want_weights.data();
  engine::cpu::ref::RouterTopK(ref);

  const size_t elem = c.dtype == DType::kBF16 ? 2 : 4;
  DeviceBuffer<uint8_t> d_logits(n * elem);
  if (n > 0) {
    MOE_CUDA_CHECK(cudaMemcpy(d_logits.get(), host_logits, n * elem, cudaMemcpyHostToDevice));
  }
  DeviceBuffer<int32_t> d_ids(slots);
  DeviceBuffer<float> d_weights(slots);
  d_ids.FillBytes(0x7f);
  RouterTopKProblem problem{.num_tokens = c.tokens,
                            .num_experts = c.experts,
                            .top_k = c.top_k,
                            .logits_dtype = c.dtype,
                            .scoring = c.scoring,
                            .renormalize = c.renormalize,
                            .top_p = c.top_p};
  ASSERT_TRUE(RouterTopKCanImplement(problem));
  ASSERT_EQ(RouterTopK(problem, {d_logits.get(), d_ids.get(), d_weights.get()}, nullptr),
            cudaSuccess);
  MOE_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<int32_t> got_ids = d_ids.Download();
  const std::vector<float> got_weights = d_weights.Download();

  int boundary_tokens = 0;
  for (int t = 0; t < c.tokens; ++t) {
    const size_t base = static_cast<size_t>(t) * c.top_k;
    bool same = true;
    for (int j = 0; j < c.top_k; ++j) same = same && got_ids[base + j] == want_ids[base + j];
    if (!same && c.top_p > 0.f) {
      // Dynamic routing may keep one expert more or less only when the running softmax mass
      // crosses top_p within rounding: the same leading ids, a different cut.
      bool prefix_equal = true;
      for (int j = 0; j < c.top_k; ++j) {
        if (got_ids[base + j] >= 0 && want_ids[base + j] >= 0) {
          prefix_equal = prefix_equal && got_ids[base + j] == want_ids[base + j];
        }
      }
      if (prefix_equal) {
        ++boundary_tokens;
        continue;
      }
    }
    ASSERT_TRUE(same) << "token " << t << " slot ids differ";
    for (int j = 0; j < c.top_k; ++j) {
      const float g = got_weights[base + j];
      const float w = want_weights[base + j];
      ASSERT_NEAR(g, w, 2e-6f + 5e-5f * std::fabs(w)) << "token " << t << " slot " << j;
    }
  }
  EXPECT_LE(boundary_tokens, c.tokens / 1000 + 1) << "too many top-p boundary disagreements";
}

TEST(RouterTopKGpuTest, MatchesReferenceOverShapeTable) {
  MOE_SKIP_IF_NO_GPU();
  uint64_t seed = 1;
  for (int tokens : {0, 1, 7, 64, 512, 4096, 16384}) {
    if (!testing::EmulationAffordableTokens(tokens)) continue;
    for (int experts : {8, 64, 128, 256}) {
      for (int top_k : {1, 2, 8}) {
        for (DType dtype : {DType::kF32, DType::kBF16}) {
          RunCase({tokens, experts, top_k, RouterScoring::kSoftmaxTopK, true, 0.f, dtype}, seed++);
          RunCase({tokens, experts, top_k, RouterScoring::kSoftmaxTopK, false, 0.f, dtype}, seed++);
          RunCase({tokens, experts, top_k, RouterScoring::kTopKSoftmax, true, 0.f, dtype}, seed++);
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

TEST(RouterTopKGpuTest, DynamicTopPKeepsAVariableNumberOfExperts) {
  MOE_SKIP_IF_NO_GPU();
  uint64_t seed = 100;
  for (int tokens : {1, 7, 512, 4096}) {
    if (!testing::EmulationAffordableTokens(tokens)) continue;
    for (int experts : {8, 64, 128}) {
      for (float top_p : {0.3f, 0.6f, 0.95f}) {
        RunCase({tokens, experts, 8, RouterScoring::kSoftmaxTopK, true, top_p, DType::kF32},
                seed++);
        RunCase({tokens, experts, 8, RouterScoring::kSoftmaxTopK, false, top_p, DType::kBF16},
                seed++);
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST(RouterTopKGpuTest, OddExpertCountsAndLargeK) {
  MOE_SKIP_IF_NO_GPU();
  RunCase({33, 1, 1, RouterScoring::kSoftmaxTopK, true, 0.f, DType::kF32}, 7);
  RunCase({33, 3, 3, RouterScoring::kSoftmaxTopK, true, 0.f, DType::kF32}, 8);
  RunCase({65, 160, 32, RouterScoring::kSoftmaxTopK, true, 0.f, DType::kF32}, 9);
  RunCase({65, 256, 32, RouterScoring::kTopKSoftmax, true, 0.f, DType::kBF16}, 10);
  RunCase({65, 97, 16, RouterScoring::kSoftmaxTopK, true, 0.5f, DType::kF32}, 11);
}

TEST(RouterTopKGpuTest, RejectsUnsupportedProblems) {
  // Host-side validation: no device needed.
  RouterTopKProblem p{.num_tokens = 4, .num_experts = 512, .top_k = 8};
  EXPECT_EQ(RouterTopK(p, {}, nullptr), cudaErrorInvalidValue);
  p.num_experts = 64;
  p.top_k = 0;
  EXPECT_EQ(RouterTopK(p, {}, nullptr), cudaErrorInvalidValue);
  p.top_k = 8;
  EXPECT_EQ(RouterTopK(p, {}, nullptr), cudaErrorInvalidValue) << "null buffers";
  p.num_tokens = 0;
  EXPECT_EQ(RouterTopK(p, {}, nullptr), cudaSuccess) << "nothing to do";
}

}  // namespace
}  // namespace moe::cuda
