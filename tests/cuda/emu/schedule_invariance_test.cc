// Race check for the MoE kernels on the CPU emulator: the emulator reshuffles the order in which
// a block's threads run every round (SetScheduleSeed). A kernel free of intra-block races (a
// shared-memory read not ordered after its write by a barrier, atomics whose order leaks into
// the result) gives the same bytes under every schedule; these tests run the router, the permute
// and the grouped GEMMs (every tile shape) under several seeds and compare bytes.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "core/bf16.h"
#include "core/dtype.h"
#include "cuda/emu/grid.h"
#include "cuda/kernels/grouped_gemm.h"
#include "cuda/kernels/permute.h"
#include "cuda/kernels/router_topk.h"
#include "tests/cuda/cuda_test_util.h"

namespace moe::cuda {
namespace {

using testing::DeviceBuffer;

constexpr int kTokens = 45, kTopK = 3, kExperts = 8, kHidden = 256, kInter = 128;
constexpr uint64_t kSeeds[] = {1, 2, 3, 0xBEEF};

// Every output of the chain router -> permute -> gate+up (SwiGLU) -> down, as raw bytes.
std::vector<uint8_t> RunChain(GroupedGemmTile tile) {
  const std::vector<Bf16> logits = testing::RandomBf16(kTokens * kExperts, 4.f, 1);
  const std::vector<Bf16> x = testing::RandomBf16(kTokens * kHidden, 1.f, 2);
  const std::vector<Bf16> w_gate_up = testing::RandomBf16(kExperts * 2 * kInter * kHidden, 0.1f, 3);
  const std::vector<Bf16> w_down = testing::RandomBf16(kExperts * kHidden * kInter, 0.1f, 4);
  DeviceBuffer<Bf16> d_logits(logits), d_x(x), d_wgu(w_gate_up), d_wd(w_down);
  DeviceBuffer<int32_t> ids(kTokens * kTopK), offsets(kExperts + 1), row_to_token(kTokens * kTopK),
      slot_to_row(kTokens * kTopK);
  DeviceBuffer<float> weights(kTokens * kTopK);
  DeviceBuffer<Bf16> rows(kTokens * kTopK * kHidden), h(kTokens * kTopK * kInter),
      y(kTokens * kTopK * kHidden);
  rows.FillBytes(0);
  h.FillBytes(0);
  y.FillBytes(0);

  // Dynamic top-p routing, so tokens keep a varying number of experts.
  const RouterTopKProblem router{.num_tokens = kTokens,
                                 .num_experts = kExperts,
                                 .top_k = kTopK,
                                 .logits_dtype = DType::kBF16,
                                 .top_p = 0.6f};
  EXPECT_EQ(RouterTopK(router, {d_logits.get(), ids.get(), weights.get()}, nullptr), cudaSuccess);
  const PermuteProblem permute{
      .num_tokens = kTokens, .top_k = kTopK, .num_experts = kExperts, .row_bytes = kHidden * 2};
  DeviceBuffer<uint8_t> ws(PermuteWorkspaceSize(permute));
  EXPECT_EQ(Permute(permute,
                    {d_x.get(), ids.get(), rows.get(), offsets.get(), row_to_token.get(),
                     slot_to_row.get()},
                    ws.get(), ws.size(), nullptr),
            cudaSuccess);
  const GroupedGemmProblem gate_up{.num_experts = kExperts,
                                   .row_capacity = kTokens * kTopK,
                                   .n = 2 * kInter,
                                   .k = kHidden,
                                   .epilogue = GroupedGemmEpilogue::kSwiGlu,
                                   .tile = tile};
  EXPECT_EQ(GroupedGemm(gate_up, {rows.get(), nullptr, d_wgu.get(), offsets.get(), h.get()},
                        nullptr, 0, nullptr),
            cudaSuccess);
  const GroupedGemmProblem down{.num_experts = kExperts,
                                .row_capacity = kTokens * kTopK,
                                .n = kHidden,
                                .k = kInter,
                                .tile = tile};
  EXPECT_EQ(GroupedGemm(down, {h.get(), nullptr, d_wd.get(), offsets.get(), y.get()}, nullptr, 0,
                        nullptr),
            cudaSuccess);

  std::vector<uint8_t> bytes;
  auto append = [&bytes](const auto& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(v.data());
    bytes.insert(bytes.end(), p, p + v.size() * sizeof(v[0]));
  };
  append(ids.Download());
  append(weights.Download());
  append(offsets.Download());
  append(row_to_token.Download());
  append(slot_to_row.Download());
  append(rows.Download());
  append(h.Download());
  append(y.Download());
  return bytes;
}

TEST(CudaEmulatorScheduleTest, KernelResultsDoNotDependOnThreadOrder) {
  for (GroupedGemmTile tile :
       {GroupedGemmTile::kM16, GroupedGemmTile::kM64, GroupedGemmTile::kM128}) {
    SCOPED_TRACE(static_cast<int>(tile));
    emu::SetScheduleSeed(kSeeds[0]);
    const std::vector<uint8_t> first = RunChain(tile);
    for (uint64_t seed : kSeeds) {
      emu::SetScheduleSeed(seed);
      EXPECT_TRUE(RunChain(tile) == first) << "schedule seed " << seed;
    }
  }
  emu::SetScheduleSeed(0x5eed);
}

}  // namespace
}  // namespace moe::cuda
