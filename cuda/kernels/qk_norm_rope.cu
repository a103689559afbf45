// Q/K norm + RoPE launcher and the host inverse-frequency table.
#include "cuda/kernels/qk_norm_rope.cuh"

#include <cmath>

namespace moe::cuda {

bool QkNormRopeCanImplement(const QkNormRopeProblem& p) {
  const int64_t q_width = static_cast<int64_t>(p.num_heads) * p.head_dim;
  const int64_t k_width = static_cast<int64_t>(p.num_kv_heads) * p.head_dim;
  return p.num_tokens >= 0 && p.num_heads >= 1 && p.num_kv_heads >= 1 && p.head_dim >= 2 &&
         p.head_dim % 2 == 0 && (p.dtype == DType::kF32 || p.dtype == DType::kBF16) &&
         q_width <= kQkNormRopeMaxRow && k_width <= kQkNormRopeMaxRow &&
         (p.q_stride == 0 || p.q_stride >= q_width) && (p.k_stride == 0 || p.k_stride >= k_width) &&
         p.eps >= 0.f;
}

cudaError_t QkNormRope(const QkNormRopeProblem& problem, const QkNormRopeBuffers& buffers,
                       cudaStream_t stream) {
  if (!QkNormRopeCanImplement(problem)) return cudaErrorInvalidValue;
  if (problem.num_tokens == 0) return cudaSuccess;
  if (buffers.q == nullptr || buffers.k == nullptr || buffers.positions == nullptr ||
      buffers.inv_freq == nullptr) {
    return cudaErrorInvalidValue;
  }
  if (problem.norm != QkNorm::kNone &&
      (buffers.q_norm_weight == nullptr || buffers.k_norm_weight == nullptr)) {
    return cudaErrorInvalidValue;
  }
  kernel::QkNormRopeParams p{};
  p.m[0] = buffers.q;
  p.m[1] = buffers.k;
  p.heads[0] = problem.num_heads;
  p.heads[1] = problem.num_kv_heads;
  p.stride[0] =
      problem.q_stride == 0 ? int64_t{problem.num_heads} * problem.head_dim : problem.q_stride;
  p.stride[1] =
      problem.k_stride == 0 ? int64_t{problem.num_kv_heads} * problem.head_dim : problem.k_stride;
  p.weight[0] = buffers.q_norm_weight;
  p.weight[1] = buffers.k_norm_weight;
  p.positions = buffers.positions;
  p.inv_freq = buffers.inv_freq;
  p.head_dim = problem.head_dim;
  p.norm = static_cast<int>(problem.norm);
  p.eps = problem.eps;
  const int max_heads =
      problem.num_heads > problem.num_kv_heads ? problem.num_heads : problem.num_kv_heads;
  const size_t smem = static_cast<size_t>(max_heads) * (problem.head_dim + 1) * sizeof(float);
  const dim3 grid(static_cast<unsigned>(problem.num_tokens), 2);
  if (problem.dtype == DType::kF32) {
    MOE_LAUNCH(grid, kernel::kQkNormRopeThreads, smem, stream, kernel::QkNormRopeKernel<float>)(p);
  } else {
    MOE_LAUNCH(grid, kernel::kQkNormRopeThreads, smem, stream,
               kernel::QkNormRopeKernel<__nv_bfloat16>)
    (p);
  }
  return cudaGetLastError();
}

void ComputeRopeInverseFrequencies(int head_dim, double theta, float* inv_freq) {
  for (int i = 0; i < head_dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    const float base_pow = static_cast<float>(std::pow(theta, static_cast<double>(exponent)));
    inv_freq[i] = 1.0f / base_pow;
  }
}

}  // namespace moe::cuda
