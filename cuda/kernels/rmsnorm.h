// RMSNorm with the residual add fused, the semantics of engine::RmsNormArgs and the CPU
// reference (Hugging Face rounding):
//
//   if add:  x[t] = round_x(x[t] + add[t])            (written back: the residual stream update)
//   out[t]   = round_out(w * round_out(x[t] * rsqrt(mean(x[t]^2) + eps)))
//
// One CTA per row; the sum of squares is a fixed-order block reduction, so a row's result does
// not depend on the other rows (DESIGN.md §4). It differs from the reference's sequential sum by
// f32 rounding only. out may alias x.
//
// Host-only header.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/dtype.h"

namespace moe::cuda {

struct RmsNormProblem {
  int num_rows = 0;                // >= 0
  int64_t cols = 0;                // >= 1
  DType x_dtype = DType::kBF16;    // of x and add: kF32 or kBF16
  DType out_dtype = DType::kBF16;  // kF32 or kBF16
  int64_t x_stride = 0;            // elements; 0 = cols
  int64_t add_stride = 0;          // elements; 0 = cols
  int64_t out_stride = 0;          // elements; 0 = cols
  float eps = 1e-6f;
};

struct RmsNormBuffers {
  void* x = nullptr;              // [num_rows, x_stride]
  const void* add = nullptr;      // [num_rows, add_stride] or null
  const float* weight = nullptr;  // [cols]
  void* out = nullptr;            // [num_rows, out_stride]
};

bool RmsNormCanImplement(const RmsNormProblem& problem);
inline size_t RmsNormWorkspaceSize(const RmsNormProblem&) { return 0; }

cudaError_t RmsNorm(const RmsNormProblem& problem, const RmsNormBuffers& buffers,
                    cudaStream_t stream);

}  // namespace moe::cuda
