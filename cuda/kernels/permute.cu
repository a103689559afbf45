// Permute launchers: validation, workspace carving and the four launches.
#include "cuda/kernels/permute.h"

#include <cuda_runtime.h>

#include "cuda/kernels/moe_index_math.h"
#include "cuda/kernels/permute.cuh"

namespace moe::cuda {
namespace {

bool Aligned(const void* p, int64_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(bytes) == 0;
}

// Widest access (16, 8, 4, 2 or 1 bytes) that divides the row size, both strides and both bases.
int GatherVectorBytes(const kernel::GatherParams& p) {
  for (int bytes = 16; bytes > 1; bytes /= 2) {
    if (p.row_bytes % bytes == 0 && p.x_stride % bytes == 0 && p.rows_stride % bytes == 0 &&
        Aligned(p.x, bytes) && Aligned(p.rows, bytes)) {
      return bytes;
    }
  }
  return 1;
}

}  // namespace

bool PermuteCanImplement(const PermuteProblem& problem) {
  const int64_t x_stride = problem.x_stride_bytes == 0 ? problem.row_bytes : problem.x_stride_bytes;
  const int64_t rows_stride =
      problem.rows_stride_bytes == 0 ? problem.row_bytes : problem.rows_stride_bytes;
  const int64_t capacity = PermuteRowCapacity(problem.num_tokens, problem.top_k,
                                              problem.num_experts, problem.row_alignment);
  return problem.num_tokens >= 0 && problem.top_k >= 1 && problem.num_experts >= 1 &&
         problem.num_experts <= kPermuteMaxExperts && problem.row_alignment >= 1 &&
         problem.row_bytes > 0 && x_stride >= problem.row_bytes &&
         rows_stride >= problem.row_bytes && capacity < (int64_t{1} << 31);
}

size_t PermuteWorkspaceSize(const PermuteProblem& problem) {
  const int64_t chunks = PermuteNumChunks(static_cast<int64_t>(problem.num_tokens) * problem.top_k);
  return static_cast<size_t>(RoundUp(chunks * problem.num_experts * 4, 256));
}

cudaError_t GatherPermutedRows(const PermuteProblem& problem, const void* x,
                               const int32_t* expert_offsets, const int32_t* row_to_token,
                               int64_t row_capacity, void* rows, cudaStream_t stream) {
  if (!PermuteCanImplement(problem)) return cudaErrorInvalidValue;
  if (row_capacity <= 0) return cudaSuccess;
  if (rows == nullptr || expert_offsets == nullptr || row_to_token == nullptr ||
      (x == nullptr && problem.num_tokens > 0)) {
    return cudaErrorInvalidValue;
  }
  kernel::GatherParams p{};
  p.x = static_cast<const char*>(x);
  p.x_stride = problem.x_stride_bytes == 0 ? problem.row_bytes : problem.x_stride_bytes;
  p.rows = static_cast<char*>(rows);
  p.rows_stride = problem.rows_stride_bytes == 0 ? problem.row_bytes : problem.rows_stride_bytes;
  p.row_bytes = problem.row_bytes;
  p.expert_offsets = expert_offsets;
  p.num_experts = problem.num_experts;
  p.row_to_token = row_to_token;
  constexpr int kWarps = kernel::kGatherThreads / 32;
  // Enough warps to cover the capacity, capped; the kernel strides over the real R.
  const dim3 grid(static_cast<unsigned>(MinI64(CeilDiv(row_capacity, kWarps), 8192)));
  const dim3 block(kernel::kGatherThreads);
  switch (GatherVectorBytes(p)) {
    case 16:
      MOE_LAUNCH(grid, block, 0, stream, kernel::GatherRowsKernel<uint4>)(p);
      break;
    case 8:
      MOE_LAUNCH(grid, block, 0, stream, kernel::GatherRowsKernel<uint2>)(p);
      break;
    case 4:
      MOE_LAUNCH(grid, block, 0, stream, kernel::GatherRowsKernel<uint32_t>)(p);
      break;
    case 2:
      MOE_LAUNCH(grid, block, 0, stream, kernel::GatherRowsKernel<uint16_t>)(p);
      break;
    default:
      MOE_LAUNCH(grid, block, 0, stream, kernel::GatherRowsKernel<uint8_t>)(p);
      break;
  }
  return cudaGetLastError();
}

cudaError_t Permute(const PermuteProblem& problem, const PermuteBuffers& buffers, void* workspace,
                    size_t workspace_bytes, cudaStream_t stream) {
  if (!PermuteCanImplement(problem)) return cudaErrorInvalidValue;
  const int64_t num_slots = static_cast<int64_t>(problem.num_tokens) * problem.top_k;
  if (buffers.expert_offsets == nullptr) return cudaErrorInvalidValue;
  if (num_slots > 0 && (buffers.expert_ids == nullptr || buffers.row_to_token == nullptr ||
                        buffers.slot_to_row == nullptr)) {
    return cudaErrorInvalidValue;
  }
  if (num_slots > 0 && (workspace == nullptr || workspace_bytes < PermuteWorkspaceSize(problem))) {
    return cudaErrorInvalidValue;
  }
  kernel::PermuteParams p{};
  p.expert_ids = buffers.expert_ids;
  p.num_slots = num_slots;
  p.top_k = problem.top_k;
  p.num_experts = problem.num_experts;
  p.row_alignment = problem.row_alignment;
  p.num_chunks = static_cast<int>(PermuteNumChunks(num_slots));
  p.chunk_counts = static_cast<int32_t*>(workspace);
  p.expert_offsets = buffers.expert_offsets;
  p.row_to_token = buffers.row_to_token;
  p.slot_to_row = buffers.slot_to_row;

  const size_t count_smem = static_cast<size_t>(problem.num_experts) * 4;
  const size_t rank_smem = count_smem * kPermuteWarpsPerChunk;
  if (p.num_chunks > 0) {
    MOE_LAUNCH(p.num_chunks, kernel::kPermuteThreads, count_smem, stream,
               kernel::PermuteCountKernel)
    (p);
  }
  // Runs even for zero slots: it writes expert_offsets.
  MOE_LAUNCH(1, kPermuteMaxExperts, 0, stream, kernel::PermuteScanKernel)(p);
  if (p.num_chunks > 0) {
    MOE_LAUNCH(p.num_chunks, kernel::kPermuteThreads, rank_smem, stream, kernel::PermuteRankKernel)
    (p);
  }
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess || buffers.rows == nullptr) return err;
  const int64_t capacity = PermuteRowCapacity(problem.num_tokens, problem.top_k,
                                              problem.num_experts, problem.row_alignment);
  return GatherPermutedRows(problem, buffers.x, buffers.expert_offsets, buffers.row_to_token,
                            capacity, buffers.rows, stream);
}

}  // namespace moe::cuda
