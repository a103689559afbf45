// cuBLAS baselines (see grouped_gemm_cublas.h). Row-major out[r, :] = a[r, :] . W^T is the
// column-major product out^T (n x rows) = W^T(op T of the k x n column-major W) * a^T, so every
// call is transa = T, transb = N, m = n, n = rows, k = k.
#include "cuda/kernels/grouped_gemm_cublas.h"

#include <cuda_bf16.h>

#include <vector>

#include "cuda/kernels/device_primitives.cuh"
#include "cuda/kernels/moe_index_math.h"

namespace moe::cuda {
namespace kernel {

// One CTA, thread e = expert e: compacts the non-empty experts in ascending order (the order the
// host uses for the size arrays) and writes their A (weights), B (rows) and C pointers.
__global__ void __launch_bounds__(kGroupedGemmMaxExperts)
    BuildGroupedPointersKernel(const int32_t* expert_offsets, int num_experts,
                               const __nv_bfloat16* a, int64_t lda, const __nv_bfloat16* w,
                               int64_t w_expert_stride, __nv_bfloat16* out, int64_t ldc,
                               const void** w_ptrs, const void** a_ptrs, void** out_ptrs) {
  __shared__ int scratch[33];
  const int e = threadIdx.x;
  int32_t begin = 0;
  bool nonempty = false;
  if (e < num_experts) {
    begin = expert_offsets[e];
    nonempty = expert_offsets[e + 1] > begin;
  }
  int total = 0;
  const int index = BlockExclusiveScan(nonempty ? 1 : 0, scratch, &total);
  if (!nonempty) return;
  w_ptrs[index] = w + e * w_expert_stride;
  a_ptrs[index] = a + begin * lda;
  out_ptrs[index] = out + begin * ldc;
}

}  // namespace kernel

size_t CublasGroupedGemmWorkspaceSize(int num_experts) {
  return static_cast<size_t>(RoundUp(3 * static_cast<int64_t>(num_experts) * 8, 256));
}

cublasStatus_t CublasGroupedGemm(cublasHandle_t handle, const CublasGroupedGemmProblem& problem,
                                 const CublasGroupedGemmBuffers& buffers, void* workspace,
                                 size_t workspace_bytes, cudaStream_t stream) {
  const int num_experts = problem.num_experts;
  if (num_experts < 1 || num_experts > kGroupedGemmMaxExperts ||
      problem.host_expert_offsets == nullptr || workspace == nullptr ||
      workspace_bytes < CublasGroupedGemmWorkspaceSize(num_experts)) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  const int lda = static_cast<int>(problem.lda == 0 ? problem.k : problem.lda);
  const int ldc = static_cast<int>(problem.ldc == 0 ? problem.n : problem.ldc);
  std::vector<int> m_array, n_array, k_array, lda_array, ldb_array, ldc_array, group_size;
  std::vector<cublasOperation_t> trans_a, trans_b;
  std::vector<float> alpha, beta;
  for (int e = 0; e < num_experts; ++e) {
    const int rows = problem.host_expert_offsets[e + 1] - problem.host_expert_offsets[e];
    if (rows <= 0) continue;
    trans_a.push_back(CUBLAS_OP_T);
    trans_b.push_back(CUBLAS_OP_N);
    m_array.push_back(problem.n);
    n_array.push_back(rows);
    k_array.push_back(problem.k);
    lda_array.push_back(problem.k);
    ldb_array.push_back(lda);
    ldc_array.push_back(ldc);
    alpha.push_back(1.f);
    beta.push_back(0.f);
    group_size.push_back(1);
  }
  if (m_array.empty()) return CUBLAS_STATUS_SUCCESS;
  auto** w_ptrs = static_cast<const void**>(workspace);
  const void** a_ptrs = w_ptrs + num_experts;
  void** out_ptrs = const_cast<void**>(a_ptrs + num_experts);
  MOE_LAUNCH(1, kGroupedGemmMaxExperts, 0, stream, kernel::BuildGroupedPointersKernel)
  (buffers.expert_offsets, num_experts, reinterpret_cast<const __nv_bfloat16*>(buffers.a), lda,
   reinterpret_cast<const __nv_bfloat16*>(buffers.weights),
   static_cast<int64_t>(problem.n) * problem.k, reinterpret_cast<__nv_bfloat16*>(buffers.out), ldc,
   w_ptrs, a_ptrs, out_ptrs);
  if (cudaGetLastError() != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
  cublasStatus_t status = cublasSetStream(handle, stream);
  if (status != CUBLAS_STATUS_SUCCESS) return status;
  return cublasGemmGroupedBatchedEx(
      handle, trans_a.data(), trans_b.data(), m_array.data(), n_array.data(), k_array.data(),
      alpha.data(), w_ptrs, CUDA_R_16BF, lda_array.data(), a_ptrs, CUDA_R_16BF, ldb_array.data(),
      beta.data(), out_ptrs, CUDA_R_16BF, ldc_array.data(), static_cast<int>(m_array.size()),
      group_size.data(), CUBLAS_COMPUTE_32F);
}

cublasStatus_t CublasGemmLoop(cublasHandle_t handle, const CublasGroupedGemmProblem& problem,
                              const CublasGroupedGemmBuffers& buffers, cudaStream_t stream) {
  if (problem.host_expert_offsets == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  const int64_t lda = problem.lda == 0 ? problem.k : problem.lda;
  const int64_t ldc = problem.ldc == 0 ? problem.n : problem.ldc;
  for (int e = 0; e < problem.num_experts; ++e) {
    const int32_t begin = problem.host_expert_offsets[e];
    const int rows = problem.host_expert_offsets[e + 1] - begin;
    if (rows <= 0) continue;
    const cublasStatus_t status =
        CublasDenseGemm(handle, rows, problem.n, problem.k, buffers.a + begin * lda, lda,
                        buffers.weights + static_cast<int64_t>(e) * problem.n * problem.k,
                        buffers.out + begin * ldc, ldc, stream);
    if (status != CUBLAS_STATUS_SUCCESS) return status;
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CublasDenseGemm(cublasHandle_t handle, int m, int n, int k, const Bf16* a,
                               int64_t lda, const Bf16* w, Bf16* out, int64_t ldc,
                               cudaStream_t stream) {
  if (m == 0) return CUBLAS_STATUS_SUCCESS;
  cublasStatus_t status = cublasSetStream(handle, stream);
  if (status != CUBLAS_STATUS_SUCCESS) return status;
  const float alpha = 1.f;
  const float beta = 0.f;
  return cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, CUDA_R_16BF, k, a,
                      CUDA_R_16BF, static_cast<int>(lda), &beta, out, CUDA_R_16BF,
                      static_cast<int>(ldc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

}  // namespace moe::cuda
