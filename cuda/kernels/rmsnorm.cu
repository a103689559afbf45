// RMSNorm launcher.
#include "cuda/kernels/rmsnorm.cuh"

namespace moe::cuda {
namespace {

bool IsFloat(DType d) { return d == DType::kF32 || d == DType::kBF16; }

template <typename TX, typename TOut>
cudaError_t Launch(const kernel::RmsNormParams& p, int rows, cudaStream_t stream) {
  MOE_LAUNCH(rows, kernel::kRmsNormThreads, 0, stream, kernel::RmsNormKernel<TX, TOut>)(p);
  return cudaGetLastError();
}

}  // namespace

bool RmsNormCanImplement(const RmsNormProblem& problem) {
  auto stride_ok = [&](int64_t s) { return s == 0 || s >= problem.cols; };
  return problem.num_rows >= 0 && problem.cols >= 1 && IsFloat(problem.x_dtype) &&
         IsFloat(problem.out_dtype) && stride_ok(problem.x_stride) &&
         stride_ok(problem.add_stride) && stride_ok(problem.out_stride) && problem.eps >= 0.f;
}

cudaError_t RmsNorm(const RmsNormProblem& problem, const RmsNormBuffers& buffers,
                    cudaStream_t stream) {
  if (!RmsNormCanImplement(problem)) return cudaErrorInvalidValue;
  if (problem.num_rows == 0) return cudaSuccess;
  if (buffers.x == nullptr || buffers.weight == nullptr || buffers.out == nullptr) {
    return cudaErrorInvalidValue;
  }
  kernel::RmsNormParams p{};
  p.x = buffers.x;
  p.add = buffers.add;
  p.weight = buffers.weight;
  p.out = buffers.out;
  p.cols = problem.cols;
  p.x_stride = problem.x_stride == 0 ? problem.cols : problem.x_stride;
  p.add_stride = problem.add_stride == 0 ? problem.cols : problem.add_stride;
  p.out_stride = problem.out_stride == 0 ? problem.cols : problem.out_stride;
  p.eps = problem.eps;
  const int rows = problem.num_rows;
  if (problem.x_dtype == DType::kF32) {
    return problem.out_dtype == DType::kF32 ? Launch<float, float>(p, rows, stream)
                                            : Launch<float, __nv_bfloat16>(p, rows, stream);
  }
  return problem.out_dtype == DType::kF32 ? Launch<__nv_bfloat16, float>(p, rows, stream)
                                          : Launch<__nv_bfloat16, __nv_bfloat16>(p, rows, stream);
}

}  // namespace moe::cuda
