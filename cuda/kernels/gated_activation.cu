// Gated activation and bias-convert launchers.
#include "cuda/kernels/gated_activation.cuh"

namespace moe::cuda {
namespace {

bool IsFloat(DType d) { return d == DType::kF32 || d == DType::kBF16; }

dim3 Grid(int64_t rows, int64_t cols) {
  return dim3(static_cast<unsigned>(rows),
              static_cast<unsigned>(CeilDiv(cols, kernel::kElementwiseColsPerBlock)));
}

template <typename TIn, typename TOut>
cudaError_t LaunchGated(const kernel::GatedActivationParams& p, bool interleaved, dim3 grid,
                        cudaStream_t stream) {
  if (interleaved) {
    MOE_LAUNCH(grid, kernel::kElementwiseThreads, 0, stream,
               kernel::GatedActivationKernel<TIn, TOut, true>)
    (p);
  } else {
    MOE_LAUNCH(grid, kernel::kElementwiseThreads, 0, stream,
               kernel::GatedActivationKernel<TIn, TOut, false>)
    (p);
  }
  return cudaGetLastError();
}

}  // namespace

bool GatedActivationCanImplement(const GatedActivationProblem& p) {
  return p.num_rows >= 0 && p.num_rows < (int64_t{1} << 31) && p.features >= 1 &&
         IsFloat(p.in_dtype) && IsFloat(p.out_dtype) &&
         (p.in_stride == 0 || p.in_stride >= 2 * p.features) &&
         (p.out_stride == 0 || p.out_stride >= p.features) &&
         (p.layout == GatedLayout::kHalves || p.features % kGateUpInterleave == 0);
}

cudaError_t GatedActivation(const GatedActivationProblem& problem, const void* in, void* out,
                            cudaStream_t stream) {
  if (!GatedActivationCanImplement(problem)) return cudaErrorInvalidValue;
  if (problem.num_rows == 0) return cudaSuccess;
  if (in == nullptr || out == nullptr) return cudaErrorInvalidValue;
  kernel::GatedActivationParams p{};
  p.in = in;
  p.out = out;
  p.features = problem.features;
  p.in_stride = problem.in_stride == 0 ? 2 * problem.features : problem.in_stride;
  p.out_stride = problem.out_stride == 0 ? problem.features : problem.out_stride;
  const bool interleaved = problem.layout == GatedLayout::kInterleaved8;
  const dim3 grid = Grid(problem.num_rows, problem.features);
  if (problem.in_dtype == DType::kF32) {
    return problem.out_dtype == DType::kF32
               ? LaunchGated<float, float>(p, interleaved, grid, stream)
               : LaunchGated<float, __nv_bfloat16>(p, interleaved, grid, stream);
  }
  return problem.out_dtype == DType::kF32
             ? LaunchGated<__nv_bfloat16, float>(p, interleaved, grid, stream)
             : LaunchGated<__nv_bfloat16, __nv_bfloat16>(p, interleaved, grid, stream);
}

cudaError_t AddBiasConvert(const AddBiasConvertProblem& problem, const float* in, const float* bias,
                           void* out, cudaStream_t stream) {
  if (problem.num_rows < 0 || problem.num_rows >= (int64_t{1} << 31) || problem.cols < 1 ||
      !IsFloat(problem.out_dtype) || (problem.in_stride != 0 && problem.in_stride < problem.cols) ||
      (problem.out_stride != 0 && problem.out_stride < problem.cols)) {
    return cudaErrorInvalidValue;
  }
  if (problem.num_rows == 0) return cudaSuccess;
  if (in == nullptr || out == nullptr) return cudaErrorInvalidValue;
  kernel::AddBiasConvertParams p{};
  p.in = in;
  p.bias = bias;
  p.out = out;
  p.cols = problem.cols;
  p.in_stride = problem.in_stride == 0 ? problem.cols : problem.in_stride;
  p.out_stride = problem.out_stride == 0 ? problem.cols : problem.out_stride;
  const dim3 grid = Grid(problem.num_rows, problem.cols);
  if (problem.out_dtype == DType::kF32) {
    MOE_LAUNCH(grid, kernel::kElementwiseThreads, 0, stream, kernel::AddBiasConvertKernel<float>)
    (p);
  } else {
    MOE_LAUNCH(grid, kernel::kElementwiseThreads, 0, stream,
               kernel::AddBiasConvertKernel<__nv_bfloat16>)
    (p);
  }
  return cudaGetLastError();
}

}  // namespace moe::cuda
