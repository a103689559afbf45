// Row copies with dtype conversion: the data movement of the Backend ops Embed (rows of the
// embedding table by token id), GatherRows (rows by index) and KvWrite (K and V rows scattered to
// their paged-cache slots).
//
//   dst[dst_row(i)] = convert(src[src_row(i)])   for i < num_rows,
//   src_row(i) = gather ? gather[i] : i,   dst_row(i) = scatter ? scatter[i] : i.
//
// A gather index outside [0, src_rows) gives a zero row (the device cannot report the error; the
// model validates token ids before upload). A scatter index outside [0, dst_rows) skips the row
// (-1 = "do not write", the KvWrite contract). Conversion rounds to nearest even once, so an
// F32 -> BF16 copy equals the CPU reference's Store. Up to two planes (K and V) share the
// indices in one launch.
//
// Host-only header.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/dtype.h"

namespace moe::cuda {

inline constexpr int kRowCopyMaxPlanes = 2;

struct RowCopyPlane {
  const void* src = nullptr;  // [src_rows, src_stride] of src_dtype
  int64_t src_stride = 0;     // elements; 0 = cols
  void* dst = nullptr;        // [dst_rows, dst_stride] of dst_dtype
  int64_t dst_stride = 0;     // elements; 0 = cols
};

struct RowCopyProblem {
  int num_rows = 0;                // >= 0
  int64_t cols = 0;                // >= 1
  int64_t src_rows = 0;            // bound of gather indices
  int64_t dst_rows = 0;            // bound of scatter indices
  DType src_dtype = DType::kBF16;  // kF32 or kBF16, the same for every plane
  DType dst_dtype = DType::kBF16;  // kF32 or kBF16
  int num_planes = 1;              // 1 or 2
};

struct RowCopyIndices {
  const int32_t* gather = nullptr;   // [num_rows] or null
  const int64_t* scatter = nullptr;  // [num_rows] or null
};

bool RowCopyCanImplement(const RowCopyProblem& problem);
inline size_t RowCopyWorkspaceSize(const RowCopyProblem&) { return 0; }

// Enqueues the copy. cudaErrorInvalidValue when !CanImplement or a plane pointer is missing.
cudaError_t RowCopy(const RowCopyProblem& problem, const RowCopyIndices& indices,
                    const RowCopyPlane (&planes)[kRowCopyMaxPlanes], cudaStream_t stream);

}  // namespace moe::cuda
