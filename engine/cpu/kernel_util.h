// Row addressing for activation views (F32 or BF16, which the backend checks before any kernel
// runs) without the out-of-line DTypeSize() call of TensorView::Row: a call inside a kernel loop
// forces every live vector register to be spilled. Internal linkage, so files compiled for
// different ISAs never share a copy.
#pragma once

#include <cstdint>

#include "core/tensor_view.h"

namespace moe::engine::cpu {
namespace {

inline int64_t ActElementSize(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

template <typename T = void>
inline T* ActRow(const TensorView& v, int64_t r) {
  return reinterpret_cast<T*>(static_cast<char*>(v.data) +
                              r * v.row_stride * ActElementSize(v.dtype));
}

}  // namespace
}  // namespace moe::engine::cpu
