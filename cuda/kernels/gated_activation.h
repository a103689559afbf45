// Gated activations: out[r, f] = silu(gate(r, f)) * up(r, f), f < features, for the two layouts
// the CudaBackend produces:
// - kHalves: in [R, 2F] = [gate | up] (engine::SiluMulArgs: the dense / shared-expert MLP whose
//   fused projection concatenates the gate and up row blocks);
// - kInterleaved8: in [R, 2F] in the grouped GEMM's packed gate+up column order (moe_index_math.h
//   PackedGateRow / PackedUpRow), the output of the cuBLAS grouped baseline before SwiGLU.
// silu(x) = x / (1 + e^-x) with IEEE division; the product is rounded once to out's dtype.
//
// Also AddBiasConvert: out = round(in + bias), an f32 GEMM result with its bias added in f32 and
// rounded once (the Linear epilogue when cuBLAS cannot round with the bias).
//
// Host-only header.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/dtype.h"

namespace moe::cuda {

enum class GatedLayout {
  kHalves,
  kInterleaved8,
};

struct GatedActivationProblem {
  int64_t num_rows = 0;            // >= 0
  int64_t features = 0;            // F >= 1 (kInterleaved8: F % 8 == 0)
  DType in_dtype = DType::kBF16;   // kF32 or kBF16
  DType out_dtype = DType::kBF16;  // kF32 or kBF16
  int64_t in_stride = 0;           // elements; 0 = 2F
  int64_t out_stride = 0;          // elements; 0 = F
  GatedLayout layout = GatedLayout::kHalves;
};

bool GatedActivationCanImplement(const GatedActivationProblem& problem);

cudaError_t GatedActivation(const GatedActivationProblem& problem, const void* in, void* out,
                            cudaStream_t stream);

struct AddBiasConvertProblem {
  int64_t num_rows = 0;            // >= 0
  int64_t cols = 0;                // >= 1
  DType out_dtype = DType::kBF16;  // kF32 or kBF16
  int64_t in_stride = 0;           // elements; 0 = cols
  int64_t out_stride = 0;          // elements; 0 = cols
};

// out [num_rows, out_stride] = round(in [num_rows, in_stride] (f32) + bias [cols] (f32, or null
// for none)). out may alias in when both are f32 with the same stride.
cudaError_t AddBiasConvert(const AddBiasConvertProblem& problem, const float* in, const float* bias,
                           void* out, cudaStream_t stream);

}  // namespace moe::cuda
