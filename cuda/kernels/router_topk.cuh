// Router top-k kernel: one warp per token; lane l holds the logits of experts l, l + 32, ...
// (kPerLane registers). The k selections are k rounds of a warp arg-max over the experts not yet
// taken, ordered by (logit descending, expert id ascending); selection j ends up in lane j.
#pragma once

#include <cuda_bf16.h>

#include <climits>
#include <cstdint>

#include "cuda/kernels/device_primitives.cuh"
#include "cuda/kernels/router_topk.h"

namespace moe::cuda::kernel {

struct RouterTopKParams {
  const void* logits;  // [num_tokens, logits_stride]
  int64_t logits_stride;
  int num_tokens;
  int num_experts;
  int top_k;
  bool mixtral;
  bool renormalize;
  float top_p;
  int32_t* expert_ids;    // [num_tokens, top_k]
  float* expert_weights;  // [num_tokens, top_k]
};

inline constexpr int kRouterWarpsPerBlock = 8;

// True when candidate (v, e) ranks before (best, best_e). best_e == INT_MAX means "none yet".
__device__ __forceinline__ bool RanksBefore(float v, int e, float best, int best_e) {
  if (e == INT_MAX) return false;
  if (best_e == INT_MAX) return true;
  return v > best || (v == best && e < best_e);
}

template <typename TLogit, int kPerLane>
__global__ void __launch_bounds__(32 * kRouterWarpsPerBlock) RouterTopKKernel(RouterTopKParams p) {
  const int token = blockIdx.x * kRouterWarpsPerBlock + (threadIdx.x >> 5);
  if (token >= p.num_tokens) return;  // whole warp leaves together
  const int lane = threadIdx.x & 31;
  const TLogit* row = static_cast<const TLogit*>(p.logits) + token * p.logits_stride;

  float v[kPerLane];
  uint32_t available = 0;  // bit i: expert lane + 32 i exists and is not yet selected
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int e = lane + 32 * i;
    v[i] = -INFINITY;
    if (e < p.num_experts) {
      const float x = LoadAsFloat(row + e);
      v[i] = isnan(x) ? -INFINITY : x;
      available |= 1u << i;
    }
  }

  // Selection rounds: lane j keeps the j-th selection.
  float selected_logit = -INFINITY;
  int selected_id = -1;
  for (int j = 0; j < p.top_k; ++j) {
    float best = -INFINITY;
    int best_e = INT_MAX;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      // Within a lane ids grow with i, so the strict comparison keeps the lower id on ties.
      if ((available >> i) & 1u) {
        if (best_e == INT_MAX || v[i] > best) {
          best = v[i];
          best_e = lane + 32 * i;
        }
      }
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
      const float other = __shfl_xor_sync(kFullMask, best, offset);
      const int other_e = __shfl_xor_sync(kFullMask, best_e, offset);
      if (RanksBefore(other, other_e, best, best_e)) {
        best = other;
        best_e = other_e;
      }
    }
    // (value, id) is a total order, so every lane holds the same winner.
    if (lane == j) {
      selected_logit = best;
      selected_id = best_e;
    }
    if ((best_e & 31) == lane) available &= ~(1u << (best_e >> 5));
  }

  const float max_logit = __shfl_sync(kFullMask, selected_logit, 0);
  float weight = 0.f;
  int32_t id = selected_id;
  if (p.mixtral) {
    float denom = 0.f;
    for (int j = 0; j < p.top_k; ++j) {
      denom += expf(__shfl_sync(kFullMask, selected_logit, j) - max_logit);
    }
    weight = expf(selected_logit - max_logit) / denom;
  } else {
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      if (lane + 32 * i < p.num_experts) sum += expf(v[i] - max_logit);
    }
    // Selected experts were removed from `available`, not from v: the sum covers all E.
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_xor_sync(kFullMask, sum, offset);
    const float prob = expf(selected_logit - max_logit) / sum;
    int kept = p.top_k;
    if (p.top_p > 0.f) {
      float mass = 0.f;
      kept = 0;
      while (kept < p.top_k) {
        mass += __shfl_sync(kFullMask, prob, kept);
        ++kept;
        if (mass >= p.top_p) break;
      }
    }
    float kept_sum = 0.f;
    for (int j = 0; j < kept; ++j) kept_sum += __shfl_sync(kFullMask, prob, j);
    if (lane < kept) {
      weight = p.renormalize ? prob / kept_sum : prob;
    } else {
      id = -1;
      weight = 0.f;
    }
  }
  if (lane < p.top_k) {
    const int64_t out = static_cast<int64_t>(token) * p.top_k + lane;
    p.expert_ids[out] = id;
    p.expert_weights[out] = weight;
  }
}

}  // namespace moe::cuda::kernel
