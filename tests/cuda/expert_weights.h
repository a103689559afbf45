// Random expert weights for the GPU tests: the reference layout on the host (for
// engine/cpu/reference_ops) and the kernels' packed layout on the device. Host-only.
#pragma once

#include <cmath>
#include <memory>
#include <vector>

#include "core/bf16.h"
#include "core/tensor_view.h"
#include "cuda/kernels/grouped_gemm.h"
#include "engine/cpu/reference_ops.h"
#include "tests/cuda/cuda_test_util.h"

namespace moe::cuda::testing {

// One layer's experts: reference layout on the host, kernel layout on the device. Cached for
// consecutive cases with the same sizes (Mixtral's are 2.8 GB).
struct Experts {
  int num_experts = 0;
  int hidden = 0;
  int inter = 0;
  std::vector<Bf16> gate_up;            // [E][2F][H]: gate rows then up rows (reference layout)
  std::vector<Bf16> down;               // [E][H][F]
  DeviceBuffer<Bf16> d_gate_up_packed;  // [E][2F][H], PackGateUpWeights interleave
  DeviceBuffer<Bf16> d_down;            // [E][H][F]

  std::vector<engine::cpu::ref::ExpertMatrices> Reference() {
    std::vector<engine::cpu::ref::ExpertMatrices> m(num_experts);
    for (int e = 0; e < num_experts; ++e) {
      m[e].gate_up =
          TensorView::Contiguous(gate_up.data() + static_cast<size_t>(e) * 2 * inter * hidden,
                                 DType::kBF16, 2 * inter, hidden);
      m[e].down = TensorView::Contiguous(down.data() + static_cast<size_t>(e) * hidden * inter,
                                         DType::kBF16, hidden, inter);
    }
    return m;
  }
};

inline Experts& ExpertsFor(int num_experts, int hidden, int inter) {
  static std::unique_ptr<Experts> cached;
  if (cached && cached->num_experts == num_experts && cached->hidden == hidden &&
      cached->inter == inter) {
    return *cached;
  }
  cached.reset();
  auto w = std::make_unique<Experts>();
  w->num_experts = num_experts;
  w->hidden = hidden;
  w->inter = inter;
  const size_t gu = static_cast<size_t>(num_experts) * 2 * inter * hidden;
  // Uniform weights: dot products with inputs uniform in [-1, 1] have unit variance.
  w->gate_up = RandomBf16(gu, 3.f / std::sqrt(static_cast<float>(hidden)), 1000 + hidden);
  w->down = RandomBf16(gu / 2, 3.f / std::sqrt(static_cast<float>(inter)), 2000 + inter);
  std::vector<Bf16> packed(gu);
  const size_t per_expert = static_cast<size_t>(2) * inter * hidden;
  for (int e = 0; e < num_experts; ++e) {
    const Bf16* gate = w->gate_up.data() + e * per_expert;
    PackGateUpWeights(gate, gate + static_cast<size_t>(inter) * hidden, inter, hidden,
                      packed.data() + e * per_expert);
  }
  w->d_gate_up_packed.Resize(gu);
  w->d_gate_up_packed.Upload(packed);
  w->d_down.Resize(gu / 2);
  w->d_down.Upload(w->down);
  cached = std::move(w);
  return *cached;
}

}  // namespace moe::cuda::testing
