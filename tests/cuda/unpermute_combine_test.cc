// GPU UnpermuteCombine against the CPU reference over T x k x H, bf16 and f32 activations, with
// and without the shared expert and its gate, and with dropped slots. Label `gpu`; skips
// without a GPU.
#include "cuda/kernels/unpermute_combine.h"

#include <gtest/gtest.h>

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

struct CombineCase {
  int tokens;
  int top_k;
  int hidden;
  DType dtype;
  bool shared;
  bool gate;
  DType gate_dtype;
  int64_t out_stride;  // 0 = hidden
};

std::string Describe(const CombineCase& c) {
  return "T=" + std::to_string(c.tokens) + " k=" + std::to_string(c.top_k) +
         " H=" + std::to_string(c.hidden) + (c.dtype == DType::kBF16 ? " bf16" : " f32") +
         (c.shared ? " shared" : "") + (c.gate ? " gate" : "") +
         " out_stride=" + std::to_string(c.out_stride);
}

// Host tensor of `dtype` filled with uniform values (stored as raw bytes).
std::vector<uint8_t> RandomTensor(DType dtype, size_t count, uint64_t seed) {
  const std::vector<float> f = testing::RandomF32(count, 2.f, seed);
  std::vector<uint8_t> bytes(count * (dtype == DType::kBF16 ? 2 : 4));
  for (size_t i = 0; i < count; ++i) {
    if (dtype == DType::kBF16) {
      reinterpret_cast<Bf16*>(bytes.data())[i] = ToBf16(f[i]);
    } else {
      reinterpret_cast<float*>(bytes.data())[i] = f[i];
    }
  }
  return bytes;
}

float LoadElement(DType dtype, const std::vector<uint8_t>& bytes, size_t i) {
  return dtype == DType::kBF16 ? ToFloat(reinterpret_cast<const Bf16*>(bytes.data())[i])
                               : reinterpret_cast<const float*>(bytes.data())[i];
}

void RunCase(const CombineCase& c, uint64_t seed) {
  SCOPED_TRACE(Describe(c));
  const int experts = 64;
  const std::vector<int32_t> ids = testing::RandomRouting(c.tokens, c.top_k, experts, 0.2, seed);
  // Row map: slot s -> row position in a shuffled order (any valid map works for combine).
  const int64_t slots = static_cast<int64_t>(ids.size());
  std::vector<int32_t> slot_to_row(slots);
  for (int64_t s = 0; s < slots; ++s) {
    slot_to_row[s] =
        ids[s] < 0 ? -1 : static_cast<int32_t>((s * 7919) % std::max<int64_t>(slots, 1));
  }
  const std::vector<float> weights = testing::RandomF32(slots, 1.f, seed + 1);
  const size_t elem = c.dtype == DType::kBF16 ? 2 : 4;
  const std::vector<uint8_t> y_rows = RandomTensor(c.dtype, slots * c.hidden, seed + 2);
  const std::vector<uint8_t> shared =
      RandomTensor(c.dtype, static_cast<size_t>(c.tokens) * c.hidden, seed + 3);
  const std::vector<uint8_t> gate = RandomTensor(c.gate_dtype, c.tokens, seed + 4);
  const int64_t out_stride = c.out_stride == 0 ? c.hidden : c.out_stride;

  std::vector<uint8_t> want(static_cast<size_t>(c.tokens) * out_stride * elem, 0);
  engine::UnpermuteCombineArgs ref;
  ref.y_rows =
      TensorView::Contiguous(const_cast<uint8_t*>(y_rows.data()), c.dtype, slots, c.hidden);
  ref.slot_to_row = slot_to_row.data();
  ref.expert_weights = weights.data();
  ref.num_tokens = c.tokens;
  ref.top_k = c.top_k;
  if (c.shared) {
    ref.shared =
        TensorView::Contiguous(const_cast<uint8_t*>(shared.data()), c.dtype, c.tokens, c.hidden);
    if (c.gate) {
      ref.shared_gate =
          TensorView::Contiguous(const_cast<uint8_t*>(gate.data()), c.gate_dtype, c.tokens, 1);
    }
  }
  ref.out = TensorView{want.data(), c.dtype, c.tokens, c.hidden, out_stride};
  engine::cpu::ref::UnpermuteCombine(ref, nullptr);

  DeviceBuffer<uint8_t> d_y(y_rows), d_shared(shared), d_gate(gate);
  DeviceBuffer<int32_t> d_map(slot_to_row);
  DeviceBuffer<float> d_w(weights);
  DeviceBuffer<uint8_t> d_out(want.size());
  d_out.FillBytes(0);
  UnpermuteCombineProblem problem{.num_tokens = c.tokens,
                                  .top_k = c.top_k,
                                  .hidden = c.hidden,
                                  .dtype = c.dtype,
                                  .shared_gate_dtype = c.gate_dtype,
                                  .out_stride = out_stride};
  UnpermuteCombineBuffers buffers{.y_rows = d_y.get(),
                                  .slot_to_row = d_map.get(),
                                  .expert_weights = d_w.get(),
                                  .shared = c.shared ? d_shared.get() : nullptr,
                                  .shared_gate = c.gate ? d_gate.get() : nullptr,
                                  .out = d_out.get()};
  ASSERT_TRUE(UnpermuteCombineCanImplement(problem));
  ASSERT_EQ(UnpermuteCombine(problem, buffers, nullptr), cudaSuccess);
  MOE_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<uint8_t> got = d_out.Download();
  // Slot-ordered F32 sums without FMA contraction match the reference bit for bit; the gate's
  // expf may differ by an ulp, which can move a bf16 result by one ulp.
  const double rtol = c.gate ? (c.dtype == DType::kBF16 ? 1.0 / 128 : 1e-6) : 0.0;
  const double atol = c.gate ? 1e-6 : 0.0;
  EXPECT_TRUE(testing::AllClose(
      static_cast<int64_t>(c.tokens) * c.hidden,
      [&](int64_t i) {
        const size_t at = static_cast<size_t>(i / c.hidden) * out_stride + i % c.hidden;
        return std::pair<float, float>(LoadElement(c.dtype, got, at),
                                       LoadElement(c.dtype, want, at));
      },
      atol, rtol, "combine"));
}

TEST(UnpermuteCombineGpuTest, MatchesReferenceOverShapeTable) {
  MOE_SKIP_IF_NO_GPU();
  uint64_t seed = 1;
  for (int tokens : testing::kTokenCounts) {
    if (!testing::EmulationAffordableTokens(tokens)) continue;
    for (int top_k : testing::kTopKs) {
      for (int hidden : {testing::kBenchPreset.hidden, testing::kQwen3_30B_A3B.hidden,
                         testing::kMixtral8x7B.hidden}) {
        for (DType dtype : {DType::kBF16, DType::kF32}) {
          RunCase({tokens, top_k, hidden, dtype, false, false, DType::kF32, 0}, seed++);
          RunCase({tokens, top_k, hidden, dtype, true, true, DType::kF32, 0}, seed++);
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

TEST(UnpermuteCombineGpuTest, SharedExpertVariantsAndOddSizes) {
  MOE_SKIP_IF_NO_GPU();
  RunCase({64, 8, 2048, DType::kBF16, true, false, DType::kF32, 0}, 50);  // gate 1
  RunCase({64, 8, 2048, DType::kBF16, true, true, DType::kBF16, 0}, 51);  // bf16 gate
  RunCase({33, 2, 1001, DType::kBF16, true, true, DType::kF32, 0}, 52);   // scalar path
  RunCase({33, 2, 1001, DType::kF32, false, false, DType::kF32, 0}, 53);
  RunCase({17, 8, 1024, DType::kBF16, false, false, DType::kF32, 1032}, 54);  // strided out
  RunCase({5, 32, 4096, DType::kF32, true, true, DType::kF32, 0}, 55);
}

}  // namespace
}  // namespace moe::cuda
