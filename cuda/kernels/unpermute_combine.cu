// UnpermuteCombine launcher: picks the element type, gate type and vector width.
#include "cuda/kernels/unpermute_combine.h"

#include <cuda_runtime.h>

#include "cuda/kernels/moe_index_math.h"
#include "cuda/kernels/unpermute_combine.cuh"

namespace moe::cuda {
namespace {

bool IsFloatDType(DType d) { return d == DType::kF32 || d == DType::kBF16; }

bool Aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

template <typename T, typename TGate, int kVec>
cudaError_t LaunchWith(const kernel::CombineParams& p, int num_tokens, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(num_tokens),
                  static_cast<unsigned>(CeilDiv(p.hidden, kernel::kCombineThreads * kVec)));
  MOE_LAUNCH(grid, kernel::kCombineThreads, 0, stream,
             kernel::UnpermuteCombineKernel<T, TGate, kVec>)
  (p);
  return cudaGetLastError();
}

template <typename T, typename TGate>
cudaError_t LaunchForTypes(const kernel::CombineParams& p, int num_tokens, cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(T);
  constexpr size_t kBytes = 16;
  const bool vectorizable =
      p.hidden % kVec == 0 && p.y_rows_stride % kVec == 0 && p.out_stride % kVec == 0 &&
      Aligned(p.y_rows, kBytes) && Aligned(p.out, kBytes) &&
      (p.shared == nullptr || (p.shared_stride % kVec == 0 && Aligned(p.shared, kBytes)));
  if (vectorizable) return LaunchWith<T, TGate, kVec>(p, num_tokens, stream);
  return LaunchWith<T, TGate, 1>(p, num_tokens, stream);
}

template <typename T>
cudaError_t LaunchForType(const UnpermuteCombineProblem& problem, const kernel::CombineParams& p,
                          cudaStream_t stream) {
  if (problem.shared_gate_dtype == DType::kBF16) {
    return LaunchForTypes<T, __nv_bfloat16>(p, problem.num_tokens, stream);
  }
  return LaunchForTypes<T, float>(p, problem.num_tokens, stream);
}

}  // namespace

bool UnpermuteCombineCanImplement(const UnpermuteCombineProblem& problem) {
  auto stride_ok = [&](int64_t stride) { return stride == 0 || stride >= problem.hidden; };
  return problem.num_tokens >= 0 && problem.top_k >= 1 && problem.hidden >= 1 &&
         IsFloatDType(problem.dtype) && IsFloatDType(problem.shared_gate_dtype) &&
         stride_ok(problem.y_rows_stride) && stride_ok(problem.shared_stride) &&
         stride_ok(problem.out_stride) && problem.shared_gate_stride >= 0;
}

cudaError_t UnpermuteCombine(const UnpermuteCombineProblem& problem,
                             const UnpermuteCombineBuffers& buffers, cudaStream_t stream) {
  if (!UnpermuteCombineCanImplement(problem)) return cudaErrorInvalidValue;
  if (problem.num_tokens == 0) return cudaSuccess;
  if (buffers.y_rows == nullptr || buffers.slot_to_row == nullptr ||
      buffers.expert_weights == nullptr || buffers.out == nullptr) {
    return cudaErrorInvalidValue;
  }
  kernel::CombineParams p{};
  p.y_rows = buffers.y_rows;
  p.y_rows_stride = problem.y_rows_stride == 0 ? problem.hidden : problem.y_rows_stride;
  p.slot_to_row = buffers.slot_to_row;
  p.expert_weights = buffers.expert_weights;
  p.shared = buffers.shared;
  p.shared_stride = problem.shared_stride == 0 ? problem.hidden : problem.shared_stride;
  p.shared_gate = buffers.shared != nullptr ? buffers.shared_gate : nullptr;
  p.shared_gate_stride = problem.shared_gate_stride == 0 ? 1 : problem.shared_gate_stride;
  p.out = buffers.out;
  p.out_stride = problem.out_stride == 0 ? problem.hidden : problem.out_stride;
  p.top_k = problem.top_k;
  p.hidden = problem.hidden;
  if (problem.dtype == DType::kBF16) return LaunchForType<__nv_bfloat16>(problem, p, stream);
  return LaunchForType<float>(problem, p, stream);
}

}  // namespace moe::cuda
