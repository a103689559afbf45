// cuBLAS baselines for the grouped expert GEMM (plain epilogue): the library reference the
// custom kernels are measured against, and the backend's fallback until a custom kernel is
// verified correct and faster on a GPU (issue 9).
//
// cuBLAS needs each group's row count on the host, so these take a host copy of expert_offsets:
// a backend using them pays one device-to-host synchronisation per MoE layer (the custom kernel
// does not). Rows must already be permuted (no a_row_index gather) and weights are the same
// [E, n, k] row-major layout as GroupedGemm (kNone), so outputs are directly comparable.
//
// Host-only header.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "core/bf16.h"

namespace moe::cuda {

struct CublasGroupedGemmProblem {
  int num_experts = 0;                           // E in [1, 1024]
  int n = 0;                                     // output features
  int k = 0;                                     // reduction size
  int64_t lda = 0;                               // elements; 0 = k
  int64_t ldc = 0;                               // elements; 0 = n
  const int32_t* host_expert_offsets = nullptr;  // [E + 1], host memory
};

struct CublasGroupedGemmBuffers {
  const Bf16* a = nullptr;                  // [R, lda] permuted rows
  const Bf16* weights = nullptr;            // [E, n, k]
  const int32_t* expert_offsets = nullptr;  // [E + 1], device copy of host_expert_offsets
  Bf16* out = nullptr;                      // [R, ldc]
};

// Device pointer arrays (A, B, C per non-empty expert) for cublasGemmGroupedBatchedEx.
size_t CublasGroupedGemmWorkspaceSize(int num_experts);

// One cublasGemmGroupedBatchedEx call (bf16 in/out, f32 compute), one group per non-empty
// expert. The pointer arrays are built on the device from expert_offsets (no host copy).
cublasStatus_t CublasGroupedGemm(cublasHandle_t handle, const CublasGroupedGemmProblem& problem,
                                 const CublasGroupedGemmBuffers& buffers, void* workspace,
                                 size_t workspace_bytes, cudaStream_t stream);

// One cublasGemmEx per non-empty expert.
cublasStatus_t CublasGemmLoop(cublasHandle_t handle, const CublasGroupedGemmProblem& problem,
                              const CublasGroupedGemmBuffers& buffers, cudaStream_t stream);

// One dense GEMM out[m, n] = a[m, k] . w[n, k]^T: the "same FLOPs, no grouping" roofline.
cublasStatus_t CublasDenseGemm(cublasHandle_t handle, int m, int n, int k, const Bf16* a,
                               int64_t lda, const Bf16* w, Bf16* out, int64_t ldc,
                               cudaStream_t stream);

}  // namespace moe::cuda
