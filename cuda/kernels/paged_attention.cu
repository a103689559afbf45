// Paged attention launcher: validates, chooses the CTA shape (rows per tile, heads per CTA; the
// shape never changes a result bit) and the dtype / head-size instantiation.
#include "cuda/kernels/paged_attention.cuh"

#include "cuda/kernels/moe_index_math.h"

namespace moe::cuda {
namespace {

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <typename T, int kChunks>
cudaError_t Launch(const kernel::PagedAttentionParams& p, dim3 grid, size_t smem,
                   cudaStream_t stream) {
  auto* fn = kernel::PagedAttentionKernel<T, kChunks>;
  if (smem > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  MOE_LAUNCH(grid, kernel::kAttentionThreads, smem, stream, fn)(p);
  return cudaGetLastError();
}

template <typename T>
cudaError_t LaunchDim(const kernel::PagedAttentionParams& p, dim3 grid, size_t smem,
                      cudaStream_t stream) {
  if (p.head_dim <= 64) return Launch<T, 2>(p, grid, smem, stream);
  if (p.head_dim <= 128) return Launch<T, 4>(p, grid, smem, stream);
  return Launch<T, 8>(p, grid, smem, stream);
}

}  // namespace

bool PagedAttentionCanImplement(const PagedAttentionProblem& p) {
  const int64_t q_width = static_cast<int64_t>(p.num_heads) * p.head_dim;
  const int64_t kv_width = static_cast<int64_t>(p.num_kv_heads) * p.head_dim;
  return p.num_tokens >= 0 && p.num_seqs >= 0 && p.num_kv_heads >= 1 &&
         p.num_heads >= p.num_kv_heads && p.num_heads % p.num_kv_heads == 0 &&
         p.num_heads <= 65535 && p.head_dim >= 1 && p.head_dim <= kAttentionMaxHeadDim &&
         p.block_size >= 1 && p.max_blocks_per_seq >= 0 &&
         (p.dtype == DType::kF32 || p.dtype == DType::kBF16) &&
         (p.q_stride == 0 || p.q_stride >= q_width) &&
         (p.out_stride == 0 || p.out_stride >= q_width) &&
         (p.cache_stride == 0 || p.cache_stride >= kv_width) && p.cache_slots >= 0 &&
         p.sliding_window >= 0 && p.num_sms >= 0;
}

size_t PagedAttentionWorkspaceSize(const PagedAttentionProblem& problem) {
  return static_cast<size_t>(RoundUp((static_cast<int64_t>(problem.num_seqs) + 1) * 4, 256));
}

cudaError_t PagedAttention(const PagedAttentionProblem& problem,
                           const PagedAttentionBuffers& buffers, void* workspace,
                           size_t workspace_bytes, cudaStream_t stream) {
  if (!PagedAttentionCanImplement(problem)) return cudaErrorInvalidValue;
  if (problem.num_tokens == 0 || problem.num_seqs == 0) return cudaSuccess;
  if (buffers.q == nullptr || buffers.k_cache == nullptr || buffers.v_cache == nullptr ||
      buffers.query_start == nullptr || buffers.positions == nullptr ||
      buffers.block_tables == nullptr || buffers.out == nullptr || workspace == nullptr ||
      workspace_bytes < PagedAttentionWorkspaceSize(problem)) {
    return cudaErrorInvalidValue;
  }
  const int d = problem.head_dim;
  const int64_t q_width = static_cast<int64_t>(problem.num_heads) * d;
  const int group = problem.num_heads / problem.num_kv_heads;
  // Heads per CTA: the largest divisor of the GQA group that fits the CTA's query vectors.
  int heads_per_cta = 1;
  for (int h = 1; h <= group && h <= kAttentionMaxQueries; ++h) {
    if (group % h == 0) heads_per_cta = h;
  }
  // At most one row per sequence on average: decode. One row per tile, and split the head
  // group further while the grid is small (the K/V blocks are then re-read from L2).
  const bool decode = problem.num_tokens <= problem.num_seqs;
  const int sms = problem.num_sms > 0 ? problem.num_sms : 132;
  if (decode) {
    while (heads_per_cta % 2 == 0 &&
           static_cast<int64_t>(problem.num_seqs) * problem.num_kv_heads * (group / heads_per_cta) <
               2 * sms) {
      heads_per_cta /= 2;
    }
  }
  const int rows_per_tile = decode ? 1 : kAttentionMaxQueries / heads_per_cta;

  kernel::PagedAttentionParams p{};
  p.q = buffers.q;
  p.q_stride = problem.q_stride == 0 ? q_width : problem.q_stride;
  p.k_cache = buffers.k_cache;
  p.v_cache = buffers.v_cache;
  p.cache_stride = problem.cache_stride == 0 ? static_cast<int64_t>(problem.num_kv_heads) * d
                                             : problem.cache_stride;
  p.cache_slots = problem.cache_slots;
  p.out = buffers.out;
  p.out_stride = problem.out_stride == 0 ? q_width : problem.out_stride;
  p.query_start = buffers.query_start;
  p.positions = buffers.positions;
  p.block_tables = buffers.block_tables;
  p.max_blocks_per_seq = problem.max_blocks_per_seq;
  p.block_size = problem.block_size;
  p.num_seqs = problem.num_seqs;
  p.head_dim = d;
  p.group = group;
  p.heads_per_cta = heads_per_cta;
  p.rows_per_tile = rows_per_tile;
  p.scale = problem.scale;
  p.sliding_window = problem.sliding_window;
  const size_t elem = DTypeSize(problem.dtype);
  p.vec8 = d % 8 == 0 && (p.cache_stride * elem) % 16 == 0 && Aligned16(buffers.k_cache) &&
           Aligned16(buffers.v_cache);
  p.tile_prefix = static_cast<int32_t*>(workspace);

  MOE_LAUNCH(1, 1024, 0, stream, kernel::AttentionTilePrefixKernel)
  (buffers.query_start, problem.num_seqs, rows_per_tile, static_cast<int32_t*>(workspace));
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;

  const int64_t tiles = problem.num_seqs + CeilDiv(problem.num_tokens, rows_per_tile);
  const dim3 grid(static_cast<unsigned>(tiles),
                  static_cast<unsigned>(problem.num_kv_heads * (group / heads_per_cta)));
  const size_t smem =
      static_cast<size_t>(kAttentionMaxQueries * d + 2 * kAttentionKeyBlock * (d + 1)) * 4;
  if (problem.dtype == DType::kF32) return LaunchDim<float>(p, grid, smem, stream);
  return LaunchDim<__nv_bfloat16>(p, grid, smem, stream);
}

}  // namespace moe::cuda
