// UnpermuteCombine on the GPU, the semantics of engine::UnpermuteCombineArgs and the CPU
// reference:
//
//   out[t] = sum over slots j = 0..k-1 with slot_to_row[t, j] >= 0 of
//              expert_weights[t, j] * y_rows[slot_to_row[t, j]]
//            (+ sigmoid(shared_gate[t]) * shared[t] when shared is given; gate 1 without
//             shared_gate)
//
// accumulated in F32 in exactly that order, rounded once to the output dtype. Products and sums
// are explicitly unfused (no FMA contraction), so without a shared gate the result is bitwise
// equal to the CPU reference; the gate's sigmoid uses CUDA's expf (a few ulp).
//
// One pass over the data: the routing weights, the shared expert and its gate are applied while
// the k expert rows are read, so y_rows is read once and out written once.
//
// Host-only header.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace moe::cuda {

struct UnpermuteCombineProblem {
  int num_tokens = 0;                     // T >= 0
  int top_k = 0;                          // k >= 1
  int hidden = 0;                         // H >= 1
  DType dtype = DType::kBF16;             // of y_rows, shared and out: kBF16 or kF32
  DType shared_gate_dtype = DType::kF32;  // kBF16 or kF32
  int64_t y_rows_stride = 0;              // elements; 0 = hidden
  int64_t shared_stride = 0;              // elements; 0 = hidden
  int64_t shared_gate_stride = 0;         // elements; 0 = 1
  int64_t out_stride = 0;                 // elements; 0 = hidden
};

struct UnpermuteCombineBuffers {
  const void* y_rows = nullptr;           // [capacity, y_rows_stride]
  const int32_t* slot_to_row = nullptr;   // [num_tokens, top_k]; -1 = none
  const float* expert_weights = nullptr;  // [num_tokens, top_k]
  const void* shared = nullptr;           // [num_tokens, shared_stride] or null
  const void* shared_gate = nullptr;      // [num_tokens, shared_gate_stride] logits or null
  void* out = nullptr;                    // [num_tokens, out_stride]
};

bool UnpermuteCombineCanImplement(const UnpermuteCombineProblem& problem);
inline size_t UnpermuteCombineWorkspaceSize(const UnpermuteCombineProblem&) { return 0; }

cudaError_t UnpermuteCombine(const UnpermuteCombineProblem& problem,
                             const UnpermuteCombineBuffers& buffers, cudaStream_t stream);

}  // namespace moe::cuda
