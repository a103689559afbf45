// Router top-k on the GPU: router logits [T, E] -> expert ids and weights [T, k], with the
// semantics of engine::RouterTopKArgs and the CPU reference (engine/cpu/reference_ops.h):
//
// - kSoftmaxTopK: softmax over all E experts, the k largest, optionally renormalised to sum 1.
//   With top_p > 0 (dynamic routing) only the fewest leading experts whose softmax mass reaches
//   top_p are kept (at most k); the other slots get id -1 and weight 0.
// - kTopKSoftmax (Mixtral): the k largest logits, softmax over those k.
// - Ranking is by logit, descending; ties go to the lower expert id. NaN logits rank as -inf.
//
// Expert ids match the reference exactly. Weights are F32 and agree to a few ulp: the kernel
// uses CUDA's expf and sums the E exponentials in a tree, the reference sums them in order; the
// k-length sums (kept mass, renormalisation, Mixtral denominator) are in slot order as in the
// reference. A top-p cut-off can therefore differ only when the running mass is within a few
// ulp of top_p.
//
// Host-only header.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/dtype.h"

namespace moe::cuda {

enum class RouterScoring {
  kSoftmaxTopK,  // softmax over all experts, top-k, optional renormalisation / top-p
  kTopKSoftmax,  // Mixtral: top-k logits, softmax over those k
};

struct RouterTopKProblem {
  int num_tokens = 0;                // T >= 0
  int num_experts = 0;               // E in [1, 256]
  int top_k = 0;                     // k in [1, min(E, 32)]
  int64_t logits_stride = 0;         // elements between consecutive token rows; 0 = num_experts
  DType logits_dtype = DType::kF32;  // kF32 or kBF16
  RouterScoring scoring = RouterScoring::kSoftmaxTopK;
  bool renormalize = true;  // kSoftmaxTopK: divide the kept weights by their sum
  float top_p = 0.f;        // kSoftmaxTopK: > 0 enables dynamic routing
};

struct RouterTopKBuffers {
  const void* logits = nullptr;     // [num_tokens, logits_stride] of logits_dtype
  int32_t* expert_ids = nullptr;    // [num_tokens, top_k]; -1 = no expert
  float* expert_weights = nullptr;  // [num_tokens, top_k]
};

// True when the kernel supports the problem (sizes in range, known dtype).
bool RouterTopKCanImplement(const RouterTopKProblem& problem);

// No scratch is needed; provided for the launcher contract.
inline size_t RouterTopKWorkspaceSize(const RouterTopKProblem&) { return 0; }

// Enqueues the router on `stream`. cudaErrorInvalidValue when !CanImplement or a buffer is null
// with num_tokens > 0. One warp per token, experts held in registers.
cudaError_t RouterTopK(const RouterTopKProblem& problem, const RouterTopKBuffers& buffers,
                       cudaStream_t stream);

}  // namespace moe::cuda
