// The MoE kernel case table (issue 9) shared by the GPU tests (tests/cuda) and the kernel
// benchmarks (bench/kernels/cuda): model shapes, token counts, expert counts and top-k values,
// plus a deterministic random routing generator. Host-only.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace moe::cuda::testing {

// The kernel tests also run on the CPU emulator (cuda/emu), one core, several orders of magnitude
// slower than a GPU; there they take the cases that finish quickly (EmulationAffordable). Every
// code path stays covered: the dropped cases only repeat paths with more rows.
#if defined(MOE_CUDA_EMULATION)
inline constexpr bool kEmulated = true;
#else
inline constexpr bool kEmulated = false;
#endif

// Emulated multiply-adds one grouped-GEMM case may cost (about half a second of emulation).
inline constexpr double kEmulatedMacBudget = 5e8;

// True on a GPU; under emulation, true when `multiply_adds` fits kEmulatedMacBudget.
inline bool EmulationAffordable(double multiply_adds) {
  return !kEmulated || multiply_adds <= kEmulatedMacBudget;
}

// Token counts a row-wise kernel test (router, combine) runs: the whole table on a GPU, up to 512
// under emulation.
inline bool EmulationAffordableTokens(int tokens) { return !kEmulated || tokens <= 512; }

struct MoeModelShape {
  const char* name;
  int hidden;        // H
  int intermediate;  // F (per expert)
  int num_experts;   // E of the real model
  int top_k;         // k of the real model
};

// hidden / intermediate from the `bench` preset (model/random_model.cc), Qwen3-30B-A3B and
// Mixtral-8x7B.
inline constexpr MoeModelShape kBenchPreset{"bench", 1024, 512, 64, 8};
inline constexpr MoeModelShape kQwen3_30B_A3B{"qwen3-30b-a3b", 2048, 768, 128, 8};
inline constexpr MoeModelShape kMixtral8x7B{"mixtral-8x7b", 4096, 14336, 8, 2};

inline constexpr int kTokenCounts[] = {0, 1, 7, 64, 512, 4096};
inline constexpr int kExpertCounts[] = {8, 64, 128};
inline constexpr int kTopKs[] = {1, 2, 8};

struct MoeCase {
  std::string model;
  int tokens;
  int experts;
  int top_k;
  int hidden;
  int intermediate;

  std::string Name() const {
    return model + "/T" + std::to_string(tokens) + "/E" + std::to_string(experts) + "/k" +
           std::to_string(top_k);
  }
};

// Multiply-adds the tests' grouped GEMMs execute for one case: gate+up and down (3 H F per row)
// under the auto tile and each of the three tile shapes (16, 64, 128 rows), whose tiles compute
// every row of a partly filled tile; experts with no rows cost nothing. Routing is assumed even.
inline double EmulatedGemmMacs(const MoeCase& c) {
  const double rows = static_cast<double>(c.tokens) * c.top_k;
  const double active = std::min<double>(c.experts, rows);
  if (active == 0) return 0;
  const double per_expert = std::ceil(rows / active);
  double macs = 0;
  for (int block_m : {16, 64, 128, 128}) {
    macs += active * std::ceil(per_expert / block_m) * block_m * 3.0 * c.hidden * c.intermediate;
  }
  return macs;
}

// The GEMM / layer table: the bench preset's sizes over the full T x E x k grid, Qwen3-30B-A3B's
// sizes over T x E with k = 8 (and k = 2 at E = 8), Mixtral's sizes at its own E = 8, k = 2 for
// T up to 512 (its weights are 2.8 GB; larger T only adds rows, covered by the other shapes).
inline std::vector<MoeCase> GemmCases() {
  std::vector<MoeCase> cases;
  for (int t : kTokenCounts) {
    for (int e : kExpertCounts) {
      for (int k : kTopKs) {
        if (k <= e) {
          cases.push_back(
              {kBenchPreset.name, t, e, k, kBenchPreset.hidden, kBenchPreset.intermediate});
        }
      }
    }
  }
  for (int t : kTokenCounts) {
    for (int e : kExpertCounts) {
      cases.push_back(
          {kQwen3_30B_A3B.name, t, e, 8, kQwen3_30B_A3B.hidden, kQwen3_30B_A3B.intermediate});
    }
    cases.push_back(
        {kQwen3_30B_A3B.name, t, 8, 2, kQwen3_30B_A3B.hidden, kQwen3_30B_A3B.intermediate});
  }
  for (int t : {1, 7, 64, 512}) {
    cases.push_back({kMixtral8x7B.name, t, 8, 2, kMixtral8x7B.hidden, kMixtral8x7B.intermediate});
  }
  if (!kEmulated) return cases;
  // Under emulation a case runs at its model's sizes when affordable, else at H = 256, F = 128
  // (still several k tiles, n tiles and stage-ring wraps), else not at all.
  std::vector<MoeCase> emulated;
  for (MoeCase c : cases) {
    if (!EmulationAffordable(EmulatedGemmMacs(c))) {
      c.model += "-scaled";
      c.hidden = 256;
      c.intermediate = 128;
    }
    if (EmulationAffordable(EmulatedGemmMacs(c))) emulated.push_back(c);
  }
  return emulated;
}

// Routing for num_tokens tokens: top_k distinct experts per token, drawn with a skew towards
// low ids (so with many experts some stay empty, as real routers do), and with probability
// drop_fraction a slot routes nowhere (expert -1, dynamic routing). Deterministic in seed.
inline std::vector<int32_t> RandomRouting(int num_tokens, int top_k, int num_experts,
                                          double drop_fraction, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(num_tokens) * top_k);
  std::vector<int32_t> pool(num_experts);
  std::bernoulli_distribution drop(drop_fraction);
  for (int t = 0; t < num_tokens; ++t) {
    std::iota(pool.begin(), pool.end(), 0);
    for (int j = 0; j < top_k; ++j) {
      const int span = std::max(1, (num_experts - j) * 3 / 4);
      const int pick = std::min(j + static_cast<int>(rng() % span), num_experts - 1);
      std::swap(pool[j], pool[pick]);
      ids[static_cast<size_t>(t) * top_k + j] = drop(rng) ? -1 : pool[j];
    }
  }
  return ids;
}

// Exclusive prefix of per-expert routed rows ([E + 1]), no padding.
inline std::vector<int32_t> OffsetsOfRouting(const std::vector<int32_t>& ids, int num_experts) {
  std::vector<int32_t> offsets(num_experts + 1, 0);
  for (int32_t e : ids) {
    if (e >= 0 && e < num_experts) ++offsets[e + 1];
  }
  for (int e = 0; e < num_experts; ++e) offsets[e + 1] += offsets[e];
  return offsets;
}

}  // namespace moe::cuda::testing
