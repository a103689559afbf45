// CudaBackend under the real engine: EngineLoop + scheduler + executor + device KV cache, with
// continuous batching and chunked prefill. In deterministic mode a request's tokens do not depend
// on what shares its steps or on the token budget (DESIGN.md §4); with f32 activations greedy
// tokens equal the reference backend's.
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <vector>

#include "cuda/backend/cuda_backend.h"
#include "engine/cpu/reference_backend.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/testing/test_engine.h"

namespace moe::cuda {
namespace {

using engine::RequestOutput;

scheduler::SchedulerConfig Config(int budget) {
  scheduler::SchedulerConfig sc;
  sc.max_num_batched_tokens = budget;
  sc.max_num_seqs = 32;
  sc.max_model_len = 256;
  sc.num_blocks = 64;
  sc.block_size = 16;
  return sc;
}

// One engine over `backend` and the tiny preset.
struct Engine : moe::testing::TestEngine {
  Engine(std::unique_ptr<engine::Backend> b, DType activations, scheduler::SchedulerConfig sc)
      : TestEngine(std::move(b), sc,
                   {.model_seed = 5, .activations = activations, .engine_seed = 99}) {}

  // Submits every request at once; returns each one's output ids.
  std::vector<std::vector<int32_t>> Run(const std::vector<batching::Request>& requests) {
    std::vector<std::shared_ptr<moe::testing::CollectingSink>> sinks;
    for (const batching::Request& r : requests) {
      sinks.push_back(std::make_shared<moe::testing::CollectingSink>());
      const Status s = loop->Submit(r, sinks.back());
      MOE_CHECK(s.ok()) << s.message();
    }
    std::vector<std::vector<int32_t>> out;
    for (auto& sink : sinks) {
      RequestOutput o = sink->Wait();
      EXPECT_TRUE(o.status.ok()) << o.status.message();
      out.push_back(o.output_ids);
    }
    return out;
  }
};

std::unique_ptr<engine::Backend> Cuda(bool deterministic, GroupedGemmKernel gemm) {
  CudaBackendOptions options;
  options.deterministic = deterministic;
  options.grouped_gemm = gemm;
  auto b = CudaBackend::Create(options);
  MOE_CHECK(b.ok()) << b.status().message();
  return std::move(*b);
}

// Prompts of 1..50 tokens; greedy, plus seeded sampling when `sampled`.
std::vector<batching::Request> Requests(int n, bool sampled, int seed) {
  std::mt19937 rng(seed);
  std::vector<batching::Request> requests(n);
  for (int i = 0; i < n; ++i) {
    const int len = 1 + static_cast<int>(rng() % 50);
    for (int j = 0; j < len; ++j) {
      requests[i].prompt.push_back(3 + static_cast<int32_t>(rng() % 500));
    }
    requests[i].sampling.temperature = 0.f;
    requests[i].sampling.max_tokens = 3 + static_cast<int>(rng() % 6);
    requests[i].sampling.ignore_eos = true;
    if (sampled && i % 3 == 2) {
      requests[i].sampling.temperature = 0.8f;
      requests[i].sampling.seed = 7 + i;
    }
  }
  return requests;
}

TEST(CudaBackendEngine, DeterministicModeTokensDoNotDependOnTheBatch) {
  MOE_SKIP_IF_NO_GPU();
  const std::vector<batching::Request> requests = Requests(8, true, 1);
  for (GroupedGemmKernel gemm : {GroupedGemmKernel::kCublas, GroupedGemmKernel::kCustom}) {
    SCOPED_TRACE(gemm == GroupedGemmKernel::kCustom ? "custom" : "cublas");
    std::vector<std::vector<int32_t>> alone;
    {
      Engine e(Cuda(true, gemm), DType::kBF16, Config(512));
      for (const batching::Request& r : requests) alone.push_back(e.Run({r})[0]);
    }
    // All at once with a 32-token budget: prompts prefill in chunks beside other decodes.
    Engine e(Cuda(true, gemm), DType::kBF16, Config(32));
    EXPECT_EQ(e.Run(requests), alone);
  }
}

TEST(CudaBackendEngine, F32GreedyTokensMatchTheReferenceBackend) {
  MOE_SKIP_IF_NO_GPU();
  const std::vector<batching::Request> requests = Requests(10, false, 2);
  Engine ref(std::make_unique<engine::cpu::ReferenceBackend>(2), DType::kF32, Config(64));
  const auto want = ref.Run(requests);
  Engine gpu(Cuda(false, GroupedGemmKernel::kCublas), DType::kF32, Config(64));
  EXPECT_EQ(gpu.Run(requests), want);
}

}  // namespace
}  // namespace moe::cuda
