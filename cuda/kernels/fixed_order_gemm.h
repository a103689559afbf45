// Fixed-order GEMM on CUDA cores: out[r, c] = epilogue(sum_k A[r, k] * W_g[c, k]) with bf16
// weights and F32 or BF16 activations, dense (one weight matrix) or grouped by expert segments
// read on the device (no host sync). The CudaBackend's path for
// - F32 activations (cuBLAS and the mma.sync kernels take bf16 A only; rounding A to bf16 would
//   leave the f32 tolerance of the CPU reference), and
// - --deterministic mode: every output is one f32 fmaf chain over k in ascending order, rounded
//   once. The chain is the same for every tile configuration, grid and batch, so a row's bits
//   depend only on that row (DESIGN.md §4) - by construction, not by heuristics of a library.
//
// Epilogues: kNone (+ optional f32 bias per column, dense only); kSwiGluInterleaved (W_g is the
// [2n, k] gate+up interleave of moe_index_math.h: out[r, f] = silu(A.gate_f) * (A.up_f)).
//
// Weights [G, n_w, k] bf16, k contiguous (n_w = n, or 2n for SwiGLU). Rows of a group:
// dense = [0, rows); grouped = [expert_offsets[g], expert_offsets[g + 1]) clipped to rows.
// Rows outside the segments are not written.
//
// CUDA-core throughput (no tensor cores): correct and batch invariant, several times slower than
// cuBLAS / mma.sync for large M. A tensor-core path with a fixed k order is the upgrade.
//
// Host-only header.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/bf16.h"
#include "core/dtype.h"

namespace moe::cuda {

enum class FixedGemmEpilogue {
  kNone,
  kSwiGluInterleaved,
};

struct FixedGemmProblem {
  int num_groups = 1;              // G in [1, 1024]; grouped when expert_offsets is given
  int64_t rows = 0;                // dense: M; grouped: row capacity (bound of the offsets)
  int n = 0;                       // output columns >= 1 (SwiGLU: features, % 8 == 0)
  int k = 0;                       // reduction size >= 1
  DType a_dtype = DType::kBF16;    // kF32 or kBF16
  DType out_dtype = DType::kBF16;  // kF32 or kBF16
  int64_t lda = 0;                 // elements; 0 = k
  int64_t ldc = 0;                 // elements; 0 = n
  FixedGemmEpilogue epilogue = FixedGemmEpilogue::kNone;
};

struct FixedGemmBuffers {
  const void* a = nullptr;                  // [rows, lda]
  const Bf16* weights = nullptr;            // [G, n_w, k]
  const float* bias = nullptr;              // [n] or null (kNone only)
  const int32_t* expert_offsets = nullptr;  // [G + 1] device, or null = dense (G must be 1)
  void* out = nullptr;                      // [rows, ldc]
};

bool FixedOrderGemmCanImplement(const FixedGemmProblem& problem);
inline size_t FixedOrderGemmWorkspaceSize(const FixedGemmProblem&) { return 0; }

cudaError_t FixedOrderGemm(const FixedGemmProblem& problem, const FixedGemmBuffers& buffers,
                           cudaStream_t stream);

}  // namespace moe::cuda
