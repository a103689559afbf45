// Token permute on the GPU: a stable counting sort of the num_tokens x top_k routing slots by
// expert, with the semantics of engine::PermuteArgs and the CPU reference:
//
// - Rows are grouped by ascending expert id; within an expert in ascending (token, slot) order.
// - expert_offsets[e] .. expert_offsets[e + 1] is expert e's segment; R = expert_offsets[E].
// - Slots with expert id -1 (or outside [0, E)) route nowhere: slot_to_row = -1, no row.
// - Optional padding (row_alignment > 1): each segment is rounded up to a multiple of
//   row_alignment, the pad rows at its end get row_to_token -1 and zero rows. With
//   row_alignment 1 the result equals the CPU reference exactly.
// - The row copy is optional (buffers.rows == nullptr): the grouped GEMM can gather its A rows
//   through row_to_token instead (GroupedGemmBuffers::a_row_index), saving a pass over [R, H].
//
// Four launches, no host synchronisation: per-chunk expert histograms, one CTA that scans them
// into per-(chunk, expert) row bases and expert_offsets, per-chunk stable ranks (warp match_any)
// that write both row maps, and a vectorised row gather. Deterministic.
//
// Host-only header.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace moe::cuda {

struct PermuteProblem {
  int num_tokens = 0;             // T >= 0
  int top_k = 0;                  // k >= 1
  int num_experts = 0;            // E in [1, 1024]
  int row_alignment = 1;          // >= 1; 1 = no padding (the Backend contract layout)
  int64_t row_bytes = 0;          // bytes of one row of x and rows (H * element size); > 0
  int64_t x_stride_bytes = 0;     // between rows of x; 0 = row_bytes
  int64_t rows_stride_bytes = 0;  // between rows of rows; 0 = row_bytes
};

struct PermuteBuffers {
  const void* x = nullptr;              // [num_tokens, x_stride_bytes]
  const int32_t* expert_ids = nullptr;  // [num_tokens, top_k]; -1 = none
  void* rows = nullptr;                 // [PermuteRowCapacity(...), rows_stride_bytes] or null
  int32_t* expert_offsets = nullptr;    // [num_experts + 1], exclusive prefix of segment rows
  int32_t* row_to_token = nullptr;      // [PermuteRowCapacity(...)]; first R written; pad = -1
  int32_t* slot_to_row = nullptr;       // [num_tokens, top_k]; -1 = none
};

bool PermuteCanImplement(const PermuteProblem& problem);

// Scratch for the per-chunk histograms: PermuteNumChunks(T * k) * E int32 (256-byte rounded).
size_t PermuteWorkspaceSize(const PermuteProblem& problem);

// Enqueues the permute on `stream`. The workspace must hold PermuteWorkspaceSize(problem) bytes.
// Returns cudaErrorInvalidValue for unsupported problems or missing buffers.
cudaError_t Permute(const PermuteProblem& problem, const PermuteBuffers& buffers, void* workspace,
                    size_t workspace_bytes, cudaStream_t stream);

// Copies rows[r] = x[row_to_token[r]] for r < expert_offsets[num_experts] (zero rows where
// row_to_token is -1): the last stage of Permute, exposed for callers that build the maps
// differently. `row_capacity` bounds R (the grid size).
cudaError_t GatherPermutedRows(const PermuteProblem& problem, const void* x,
                               const int32_t* expert_offsets, const int32_t* row_to_token,
                               int64_t row_capacity, void* rows, cudaStream_t stream);

}  // namespace moe::cuda
