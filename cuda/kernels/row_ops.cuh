// Row copy kernel: one CTA per (row, plane); 8-element vector accesses when every row start is
// 16-byte aligned, scalar otherwise.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "cuda/kernels/row_access.cuh"
#include "cuda/kernels/row_ops.h"

namespace moe::cuda::kernel {

inline constexpr int kRowCopyThreads = 128;

struct RowCopyParams {
  const void* src[kRowCopyMaxPlanes];
  int64_t src_stride[kRowCopyMaxPlanes];
  void* dst[kRowCopyMaxPlanes];
  int64_t dst_stride[kRowCopyMaxPlanes];
  const int32_t* gather;
  const int64_t* scatter;
  int64_t cols;
  int64_t src_rows;
  int64_t dst_rows;
};

template <typename TSrc, typename TDst, bool kVec>
__global__ void __launch_bounds__(kRowCopyThreads) RowCopyKernel(RowCopyParams p) {
  const int64_t i = blockIdx.x;
  const int plane = blockIdx.y;
  const int64_t dst_row = p.scatter != nullptr ? p.scatter[i] : i;
  if (dst_row < 0 || dst_row >= p.dst_rows) return;
  const int64_t src_row = p.gather != nullptr ? static_cast<int64_t>(p.gather[i]) : i;
  const bool zero = src_row < 0 || src_row >= p.src_rows;
  // Select the plane without indexing the parameter arrays dynamically (that would copy them to
  // local memory).
  const void* src_base = plane == 0 ? p.src[0] : p.src[1];
  void* dst_base = plane == 0 ? p.dst[0] : p.dst[1];
  const int64_t src_stride = plane == 0 ? p.src_stride[0] : p.src_stride[1];
  const int64_t dst_stride = plane == 0 ? p.dst_stride[0] : p.dst_stride[1];
  const TSrc* src = static_cast<const TSrc*>(src_base) + (zero ? 0 : src_row) * src_stride;
  TDst* dst = static_cast<TDst*>(dst_base) + dst_row * dst_stride;
  if constexpr (kVec) {
    for (int64_t c = threadIdx.x * 8; c < p.cols; c += kRowCopyThreads * 8) {
      float v[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
      if (!zero) Load8(src + c, v);
      Store8(dst + c, v);
    }
  } else {
    for (int64_t c = threadIdx.x; c < p.cols; c += kRowCopyThreads) {
      StoreFromFloat(dst + c, zero ? 0.f : LoadAsFloat(src + c));
    }
  }
}

}  // namespace moe::cuda::kernel
