// CudaBackend's MoE ops (RouterTopK, Permute, GroupedGemmSwiGlu, GroupedGemm, UnpermuteCombine)
// against engine::cpu::ReferenceBackend: 0, 1, 7, 64 and 512 tokens; the tiny and bench presets'
// and Qwen3-30B-A3B's expert shapes plus an odd one; every grouped GEMM path (cuBLAS baseline,
// custom mma.sync kernel, deterministic fixed-order, deterministic + custom); routing with
// dropped slots (experts with no rows). Label `gpu`; skips without a device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "cuda/kernels/moe_index_math.h"
#include "tests/cuda/backend/backend_test_util.h"
#include "tests/cuda/moe_kernel_cases.h"

namespace moe::cuda::testing {
namespace {

using engine::Stream;

// On the CPU emulator (cuda/emu) the 512-token cases are left to GPU runs: they only add rows.
#if defined(MOE_CUDA_EMULATION)
constexpr int kTokenCounts[] = {0, 1, 7, 64};
#else
constexpr int kTokenCounts[] = {0, 1, 7, 64, 512};
#endif
constexpr DType kDtypes[] = {DType::kF32, DType::kBF16};

struct MoeShape {
  const char* name;
  int hidden, inter, experts, top_k;
};

const MoeShape kMoeShapes[] = {
    {"tiny", 256, 256, 8, 2},
    {"bench", 1024, 512, 64, 8},
    {"qwen3-30b-a3b", 2048, 768, 128, 8},
    {"odd", 196, 24, 5, 3},  // H % 8 != 0: the custom kernel cannot run, its fallback does
};

// On the CPU emulator (cuda/emu), cases whose expert GEMMs would cost more than 2e9
// multiply-adds are left to GPU runs. Emulated tiles cost as much for the rows they pad as for
// real ones: up to min(E, T k) active experts x 128 rows x 3 H F.
bool LeftToGpu(const MoeShape& shape, int tokens) {
#if defined(MOE_CUDA_EMULATION)
  const double active = std::min<double>(shape.experts, static_cast<double>(tokens) * shape.top_k);
  return active * 128 * 3.0 * shape.hidden * shape.inter > 2e9;
#else
  (void)shape;
  (void)tokens;
  return false;
#endif
}

struct GemmConfig {
  const char* name;
  CudaBackendOptions options;
};

std::vector<GemmConfig> GemmConfigs() {
  CudaBackendOptions cublas, custom, det, det_custom;
  custom.grouped_gemm = GroupedGemmKernel::kCustom;
  det.deterministic = true;
  det_custom.deterministic = true;
  det_custom.grouped_gemm = GroupedGemmKernel::kCustom;
  return {{"cublas", cublas},
          {"custom", custom},
          {"deterministic", det},
          {"deterministic+custom", det_custom}};
}

// Expert outputs: f32 sums in another order; bf16 adds the baseline's bf16 rounding of gate and
// up before the SwiGLU.
Tolerance GemmTolerance(DType d) {
  return d == DType::kF32 ? Tolerance{2e-4, 2e-5} : Tolerance{1.0 / 32, 1.0 / 128};
}

std::string Label(const MoeShape& s, DType d, int t) {
  return std::string(s.name) + " " + DTypeLabel(d) + " T" + std::to_string(t);
}

TEST(CudaBackendMoe, RouterTopKMatchesReference) {
  MOE_SKIP_IF_NO_GPU();
  BackendPair pair = BackendPair::Make();
  struct RouterCase {
    int experts, top_k;
    model::RouterKind kind;
    bool renormalize;
    float top_p;
  };
  const RouterCase cases[] = {
      {8, 2, model::RouterKind::kSoftmaxTopK, true, 0.f},
      {64, 8, model::RouterKind::kSoftmaxTopK, true, 0.f},
      {128, 8, model::RouterKind::kSoftmaxTopK, false, 0.f},
      {128, 8, model::RouterKind::kSoftmaxTopK, true, 0.5f},
      {8, 2, model::RouterKind::kTopKSoftmax, true, 0.f},
      {60, 4, model::RouterKind::kSoftmaxTopK, true, 0.f},
  };
  for (const RouterCase& c : cases) {
    for (DType dtype : kDtypes) {
      for (int t : kTokenCounts) {
        SCOPED_TRACE("E" + std::to_string(c.experts) + " k" + std::to_string(c.top_k) + " p" +
                     std::to_string(c.top_p) + " " + DTypeLabel(dtype) + " T" + std::to_string(t));
        MirroredMatrix logits(pair, dtype, t, c.experts);
        logits.Randomize(3.f, t * 31 + c.experts);
        MirroredArray<int32_t> ids(pair, static_cast<size_t>(t) * c.top_k);
        MirroredArray<float> weights(pair, static_cast<size_t>(t) * c.top_k);
        auto args = [&](const TensorView& l, int32_t* i, float* w) {
          engine::RouterTopKArgs a;
          a.logits = l;
          a.num_tokens = t;
          a.num_experts = c.experts;
          a.top_k = c.top_k;
          a.kind = c.kind;
          a.renormalize = c.renormalize;
          a.top_p = c.top_p;
          a.expert_ids = i;
          a.expert_weights = w;
          return a;
        };
        ASSERT_TRUE(
            pair.ref->RouterTopK(args(logits.ref(), ids.ref(), weights.ref()), Stream{}).ok());
        ASSERT_TRUE(
            pair.gpu->RouterTopK(args(logits.gpu(), ids.gpu(), weights.gpu()), Stream{}).ok());
        const size_t n = static_cast<size_t>(t) * c.top_k;
        EXPECT_EQ(ids.ReadGpu(n), ids.ReadRef(n));
        EXPECT_TRUE(Near(weights.ReadGpu(n), weights.ReadRef(n), Tolerance{1e-5, 1e-7}, "weights"));
      }
    }
  }
}

// Permute's outputs on both backends for a routing; the GPU must equal the reference exactly.
TEST(CudaBackendMoe, PermuteIsExact) {
  MOE_SKIP_IF_NO_GPU();
  BackendPair pair = BackendPair::Make();
  for (const MoeShape& shape : kMoeShapes) {
    for (DType dtype : kDtypes) {
      for (int t : kTokenCounts) {
        if (LeftToGpu(shape, t)) continue;
        SCOPED_TRACE(Label(shape, dtype, t));
        const int k = shape.top_k, e = shape.experts;
        const size_t slots = static_cast<size_t>(t) * k;
        MirroredArray<int32_t> ids(pair, slots), offsets(pair, e + 1), row_to_token(pair, slots),
            slot_to_row(pair, slots);
        ids.Set(RandomRouting(t, k, e, 0.1, t + e));
        MirroredMatrix x(pair, dtype, t, shape.hidden);
        x.Randomize(1.f, t);
        MirroredMatrix rows(pair, dtype, static_cast<int64_t>(slots), shape.hidden);
        auto args = [&](const TensorView& xv, const TensorView& rv, int32_t* i, int32_t* o,
                        int32_t* rt,
                        int32_t* sr) { return engine::PermuteArgs{xv, i, t, k, e, rv, o, rt, sr}; };
        ASSERT_TRUE(pair.ref
                        ->Permute(args(x.ref(), rows.ref(), ids.ref(), offsets.ref(),
                                       row_to_token.ref(), slot_to_row.ref()),
                                  Stream{})
                        .ok());
        const Status s = pair.gpu->Permute(args(x.gpu(), rows.gpu(), ids.gpu(), offsets.gpu(),
                                                row_to_token.gpu(), slot_to_row.gpu()),
                                           Stream{});
        ASSERT_TRUE(s.ok()) << s.message();
        const std::vector<int32_t> ref_offsets = offsets.ReadRef(e + 1);
        ASSERT_EQ(offsets.ReadGpu(e + 1), ref_offsets);
        const size_t routed = static_cast<size_t>(ref_offsets[e]);
        EXPECT_EQ(row_to_token.ReadGpu(routed), row_to_token.ReadRef(routed));
        EXPECT_EQ(slot_to_row.ReadGpu(slots), slot_to_row.ReadRef(slots));
        const std::vector<float> got = rows.ReadGpu(), want = rows.ReadRef();
        const size_t used = routed * shape.hidden;
        EXPECT_TRUE(BitEqual(std::vector<float>(got.begin(), got.begin() + used),
                             std::vector<float>(want.begin(), want.begin() + used), "rows"));
      }
    }
  }
}

// The expert weights of a shape, packed into both backends.
struct PackedExpertPair {
  std::vector<std::unique_ptr<FakeTensor>> tensors;
  std::unique_ptr<engine::PackedExperts> ref;

  PackedExpertPair(engine::Backend& ref_backend, const MoeShape& shape) {
    engine::ExpertsSource source;
    const float gate_scale = 1.f / std::sqrt(static_cast<float>(shape.hidden));
    const float down_scale = 1.f / std::sqrt(static_cast<float>(shape.inter));
    for (int e = 0; e < shape.experts; ++e) {
      tensors.push_back(std::make_unique<FakeTensor>(
          "gate", std::vector<int64_t>{shape.inter, shape.hidden}, gate_scale, 3 * e + 1));
      source.gate.push_back(&tensors.back()->entry);
      tensors.push_back(std::make_unique<FakeTensor>(
          "up", std::vector<int64_t>{shape.inter, shape.hidden}, gate_scale, 3 * e + 2));
      source.up.push_back(&tensors.back()->entry);
      tensors.push_back(std::make_unique<FakeTensor>(
          "down", std::vector<int64_t>{shape.hidden, shape.inter}, down_scale, 3 * e + 3));
      source.down.push_back(&tensors.back()->entry);
    }
    this->source = source;
    ref = std::move(ref_backend.PackExperts(source)).value();
  }
  engine::ExpertsSource source;
};

// One routed batch: permuted rows, offsets, the reference's h and y, for comparing GPU configs.
struct RoutedBatch {
  int tokens = 0;
  int64_t capacity = 0;
  int routed = 0;
  std::vector<int32_t> offsets;
  std::vector<float> rows;  // [capacity, H]
  std::vector<float> h;     // [capacity, F] reference SwiGLU output
  std::vector<float> y;     // [capacity, H] reference down output (from the reference h)
  std::vector<int32_t> slot_to_row;
};

RoutedBatch RouteOnReference(BackendPair& pair, const MoeShape& shape, const PackedExpertPair& w,
                             DType dtype, const std::vector<int32_t>& ids, int tokens,
                             uint64_t seed) {
  RoutedBatch b;
  b.tokens = tokens;
  const int k = shape.top_k, e = shape.experts;
  b.capacity = static_cast<int64_t>(tokens) * k;
  MirroredArray<int32_t> d_ids(pair, b.capacity), offsets(pair, e + 1),
      row_to_token(pair, b.capacity), slot_to_row(pair, b.capacity);
  d_ids.Set(ids);
  MirroredMatrix x(pair, dtype, tokens, shape.hidden);
  x.Randomize(1.f, seed);
  MirroredMatrix rows(pair, dtype, b.capacity, shape.hidden);
  MOE_CHECK(pair.ref
                ->Permute({x.ref(), d_ids.ref(), tokens, k, e, rows.ref(), offsets.ref(),
                           row_to_token.ref(), slot_to_row.ref()},
                          Stream{})
                .ok());
  b.offsets = offsets.ReadRef(e + 1);
  b.routed = b.offsets[e];
  b.slot_to_row = slot_to_row.ReadRef(b.capacity);
  b.rows = rows.ReadRef();
  // h rows past the routed ones are never read; zero them so both sides see the same input.
  MirroredMatrix h(pair, dtype, b.capacity, shape.inter);
  MOE_CHECK(pair.ref->GroupedGemmSwiGlu({rows.ref(), offsets.ref(), w.ref.get(), h.ref()}, Stream{})
                .ok());
  b.h = h.ReadRef();
  std::fill(b.h.begin() + static_cast<size_t>(b.routed) * shape.inter, b.h.end(), 0.f);
  h.Set(b.h);
  MirroredMatrix y(pair, dtype, b.capacity, shape.hidden);
  MOE_CHECK(pair.ref->GroupedGemm({h.ref(), offsets.ref(), w.ref.get(), y.ref()}, Stream{}).ok());
  b.y = y.ReadRef();
  return b;
}

std::vector<float> Head(const std::vector<float>& v, size_t n) {
  return std::vector<float>(v.begin(), v.begin() + std::min(n, v.size()));
}

struct GpuGemmOut {
  std::vector<float> h, y;
};

// Runs both grouped GEMMs of `batch` on one GPU config (down on the reference's h, so each GEMM
// is checked on its own). The rows are set into strided views (row stride H + 8).
GpuGemmOut RunGpuGemms(BackendPair& pair, const MoeShape& shape, engine::PackedExperts* experts,
                       DType dtype, const RoutedBatch& b) {
  MirroredArray<int32_t> offsets(pair, b.offsets.size());
  offsets.Set(b.offsets);
  const int64_t cap = b.capacity;
  MirroredMatrix rows(pair, dtype, cap, shape.hidden + 8);
  std::vector<float> wide(static_cast<size_t>(cap) * (shape.hidden + 8), 0.f);
  for (int64_t r = 0; r < cap; ++r) {
    std::copy(b.rows.begin() + r * shape.hidden, b.rows.begin() + (r + 1) * shape.hidden,
              wide.begin() + r * (shape.hidden + 8));
  }
  rows.Set(wide);
  MirroredMatrix h(pair, dtype, cap, shape.inter);
  const TensorView rows_view = rows.gpu().ColRange(0, shape.hidden);
  Status s = pair.gpu->GroupedGemmSwiGlu({rows_view, offsets.gpu(), experts, h.gpu()}, Stream{});
  EXPECT_TRUE(s.ok()) << s.message();
  GpuGemmOut out;
  out.h = h.ReadGpu();
  MirroredMatrix h_in(pair, dtype, cap, shape.inter);
  h_in.Set(b.h);
  MirroredMatrix y(pair, dtype, cap, shape.hidden);
  s = pair.gpu->GroupedGemm({h_in.gpu(), offsets.gpu(), experts, y.gpu()}, Stream{});
  EXPECT_TRUE(s.ok()) << s.message();
  out.y = y.ReadGpu();
  return out;
}

TEST(CudaBackendMoe, GroupedGemmsMatchReferenceOnEveryPath) {
  MOE_SKIP_IF_NO_GPU();
  BackendPair base = BackendPair::Make();
  std::vector<BackendPair> configs;
  for (const GemmConfig& c : GemmConfigs()) {
    configs.push_back(BackendPair::Make(c.options, OpTestLimits(), base.ref));
  }
  for (const MoeShape& shape : kMoeShapes) {
    PackedExpertPair w(*base.ref, shape);
    std::vector<std::unique_ptr<engine::PackedExperts>> gpu_experts;
    for (BackendPair& pair : configs) {
      gpu_experts.push_back(std::move(pair.gpu->PackExperts(w.source)).value());
    }
    for (DType dtype : kDtypes) {
      for (int t : kTokenCounts) {
        if (LeftToGpu(shape, t)) continue;
        // The reference of the largest shape at 512 tokens costs ~20 GMAC: bf16 only.
        if (t == 512 && shape.hidden >= 2048 && dtype == DType::kF32) continue;
        SCOPED_TRACE(Label(shape, dtype, t));
        const std::vector<int32_t> ids =
            RandomRouting(t, shape.top_k, shape.experts, 0.05, t * 7 + shape.experts);
        const RoutedBatch b = RouteOnReference(base, shape, w, dtype, ids, t, t + 1);
        for (size_t i = 0; i < configs.size(); ++i) {
          SCOPED_TRACE(GemmConfigs()[i].name);
          const GpuGemmOut out = RunGpuGemms(configs[i], shape, gpu_experts[i].get(), dtype, b);
          EXPECT_TRUE(Near(Head(out.h, static_cast<size_t>(b.routed) * shape.inter),
                           Head(b.h, static_cast<size_t>(b.routed) * shape.inter),
                           GemmTolerance(dtype), "gate+up SwiGLU"));
          EXPECT_TRUE(Near(Head(out.y, static_cast<size_t>(b.routed) * shape.hidden),
                           Head(b.y, static_cast<size_t>(b.routed) * shape.hidden),
                           GemmTolerance(dtype), "down"));
        }
      }
    }
  }
}

// Deterministic mode: an expert row's output bits do not depend on the other rows routed in the
// same call (a 512-token batch vs its first 7 tokens alone).
TEST(CudaBackendMoe, DeterministicGroupedGemmRowsAreBatchInvariant) {
  MOE_SKIP_IF_NO_GPU();
  // Emulated: the tiny shape (the bench shape's 512 tokens are left to GPU runs).
  const MoeShape shape = kMoeShapes[LeftToGpu(kMoeShapes[1], 512) ? 0 : 1];
  for (const GemmConfig& config : GemmConfigs()) {
    if (!config.options.deterministic) continue;
    SCOPED_TRACE(config.name);
    BackendPair pair = BackendPair::Make(config.options);
    PackedExpertPair w(*pair.ref, shape);
    auto experts = std::move(pair.gpu->PackExperts(w.source)).value();
    for (DType dtype : kDtypes) {
      SCOPED_TRACE(DTypeLabel(dtype));
      const std::vector<int32_t> ids = RandomRouting(512, shape.top_k, shape.experts, 0.0, 3);
      const RoutedBatch big = RouteOnReference(pair, shape, w, dtype, ids, 512, 9);
      const RoutedBatch small =
          RouteOnReference(pair, shape, w, dtype,
                           std::vector<int32_t>(ids.begin(), ids.begin() + 7 * shape.top_k), 7, 9);
      const GpuGemmOut big_out = RunGpuGemms(pair, shape, experts.get(), dtype, big);
      const GpuGemmOut small_out = RunGpuGemms(pair, shape, experts.get(), dtype, small);
      // The small batch's x is the big batch's first 7 rows (same seed), so its rows are equal.
      for (int slot = 0; slot < 7 * shape.top_k; ++slot) {
        const int rb = big.slot_to_row[slot], rs = small.slot_to_row[slot];
        ASSERT_GE(rb, 0);
        auto row = [](const std::vector<float>& v, int r, int w) {
          return std::vector<float>(v.begin() + static_cast<size_t>(r) * w,
                                    v.begin() + static_cast<size_t>(r + 1) * w);
        };
        ASSERT_TRUE(BitEqual(row(small.rows, rs, shape.hidden), row(big.rows, rb, shape.hidden),
                             "input row"));
        EXPECT_TRUE(BitEqual(row(small_out.h, rs, shape.inter), row(big_out.h, rb, shape.inter),
                             "h of slot " + std::to_string(slot)));
        EXPECT_TRUE(BitEqual(row(small_out.y, rs, shape.hidden), row(big_out.y, rb, shape.hidden),
                             "y of slot " + std::to_string(slot)));
      }
    }
  }
}

TEST(CudaBackendMoe, UnpermuteCombineMatchesReference) {
  MOE_SKIP_IF_NO_GPU();
  BackendPair pair = BackendPair::Make();
  enum class Shared { kNone, kUngated, kGatedF32, kGatedAct };
  for (const MoeShape& shape : kMoeShapes) {
    for (DType dtype : kDtypes) {
      for (int t : kTokenCounts) {
        if (LeftToGpu(shape, t)) continue;
        for (Shared shared :
             {Shared::kNone, Shared::kUngated, Shared::kGatedF32, Shared::kGatedAct}) {
          SCOPED_TRACE(Label(shape, dtype, t) + " shared " +
                       std::to_string(static_cast<int>(shared)));
          const int k = shape.top_k;
          const size_t slots = static_cast<size_t>(t) * k;
          std::vector<int32_t> slot_to_row(slots);
          std::iota(slot_to_row.begin(), slot_to_row.end(), 0);
          std::shuffle(slot_to_row.begin(), slot_to_row.end(), std::mt19937(t));
          for (size_t i = 2; i < slots; i += 7) slot_to_row[i] = -1;
          MirroredArray<int32_t> d_map(pair, slots);
          d_map.Set(slot_to_row);
          MirroredArray<float> d_w(pair, slots);
          std::vector<float> weights = RandomF32(slots, 1.f, t + 5);
          for (float& x : weights) x = std::fabs(x);
          d_w.Set(weights);
          MirroredMatrix y_rows(pair, dtype, static_cast<int64_t>(slots), shape.hidden);
          y_rows.Randomize(2.f, t + 6);
          MirroredMatrix shared_out(pair, dtype, t, shape.hidden);
          shared_out.Randomize(1.f, t + 7);
          const DType gate_dtype = shared == Shared::kGatedF32 ? DType::kF32 : dtype;
          MirroredMatrix gate(pair, gate_dtype, t, 1);
          gate.Randomize(3.f, t + 8);
          MirroredMatrix out(pair, dtype, t, shape.hidden);
          auto args = [&](bool gpu) {
            engine::UnpermuteCombineArgs a;
            a.y_rows = gpu ? y_rows.gpu() : y_rows.ref();
            a.slot_to_row = gpu ? d_map.gpu() : d_map.ref();
            a.expert_weights = gpu ? d_w.gpu() : d_w.ref();
            a.num_tokens = t;
            a.top_k = k;
            if (shared != Shared::kNone) a.shared = gpu ? shared_out.gpu() : shared_out.ref();
            if (shared == Shared::kGatedF32 || shared == Shared::kGatedAct) {
              a.shared_gate = gpu ? gate.gpu() : gate.ref();
            }
            a.out = gpu ? out.gpu() : out.ref();
            return a;
          };
          ASSERT_TRUE(pair.ref->UnpermuteCombine(args(false), Stream{}).ok());
          const Status s = pair.gpu->UnpermuteCombine(args(true), Stream{});
          ASSERT_TRUE(s.ok()) << s.message();
          const Tolerance tol =
              dtype == DType::kF32 ? Tolerance{1e-6, 1e-7} : Tolerance{1.0 / 128, 1.0 / 1024};
          EXPECT_TRUE(Near(out.ReadGpu(), out.ReadRef(), tol, "combine"));
        }
      }
    }
  }
}

}  // namespace
}  // namespace moe::cuda::testing
