// Row copy launcher: validates, picks the dtype pair and the vector path.
#include "cuda/kernels/row_ops.cuh"

namespace moe::cuda {
namespace {

bool IsFloat(DType d) { return d == DType::kF32 || d == DType::kBF16; }

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <typename TSrc, typename TDst>
cudaError_t Launch(const kernel::RowCopyParams& p, bool vec, int num_rows, int planes,
                   cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(num_rows), static_cast<unsigned>(planes));
  if (vec) {
    MOE_LAUNCH(grid, kernel::kRowCopyThreads, 0, stream, kernel::RowCopyKernel<TSrc, TDst, true>)
    (p);
  } else {
    MOE_LAUNCH(grid, kernel::kRowCopyThreads, 0, stream, kernel::RowCopyKernel<TSrc, TDst, false>)
    (p);
  }
  return cudaGetLastError();
}

}  // namespace

bool RowCopyCanImplement(const RowCopyProblem& problem) {
  return problem.num_rows >= 0 && problem.cols >= 1 && problem.src_rows >= 0 &&
         problem.dst_rows >= 0 && IsFloat(problem.src_dtype) && IsFloat(problem.dst_dtype) &&
         problem.num_planes >= 1 && problem.num_planes <= kRowCopyMaxPlanes;
}

cudaError_t RowCopy(const RowCopyProblem& problem, const RowCopyIndices& indices,
                    const RowCopyPlane (&planes)[kRowCopyMaxPlanes], cudaStream_t stream) {
  if (!RowCopyCanImplement(problem)) return cudaErrorInvalidValue;
  if (problem.num_rows == 0) return cudaSuccess;
  kernel::RowCopyParams p{};
  p.gather = indices.gather;
  p.scatter = indices.scatter;
  p.cols = problem.cols;
  p.src_rows = problem.src_rows;
  p.dst_rows = problem.dst_rows;
  const size_t src_size = DTypeSize(problem.src_dtype);
  const size_t dst_size = DTypeSize(problem.dst_dtype);
  bool vec = problem.cols % 8 == 0;
  for (int i = 0; i < problem.num_planes; ++i) {
    const RowCopyPlane& plane = planes[i];
    if (plane.src == nullptr || plane.dst == nullptr) return cudaErrorInvalidValue;
    p.src[i] = plane.src;
    p.dst[i] = plane.dst;
    p.src_stride[i] = plane.src_stride == 0 ? problem.cols : plane.src_stride;
    p.dst_stride[i] = plane.dst_stride == 0 ? problem.cols : plane.dst_stride;
    if (p.src_stride[i] < problem.cols || p.dst_stride[i] < problem.cols) {
      return cudaErrorInvalidValue;
    }
    vec = vec && Aligned16(plane.src) && Aligned16(plane.dst) &&
          (p.src_stride[i] * src_size) % 16 == 0 && (p.dst_stride[i] * dst_size) % 16 == 0;
  }
  const int n = problem.num_rows;
  const int planes_n = problem.num_planes;
  if (problem.src_dtype == DType::kF32) {
    return problem.dst_dtype == DType::kF32
               ? Launch<float, float>(p, vec, n, planes_n, stream)
               : Launch<float, __nv_bfloat16>(p, vec, n, planes_n, stream);
  }
  return problem.dst_dtype == DType::kF32
             ? Launch<__nv_bfloat16, float>(p, vec, n, planes_n, stream)
             : Launch<__nv_bfloat16, __nv_bfloat16>(p, vec, n, planes_n, stream);
}

}  // namespace moe::cuda
