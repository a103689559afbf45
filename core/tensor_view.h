// Non-owning views of 2-D row-major tensors with a row stride (in elements). Activations,
// weights and caches are all addressed through these; the memory belongs to a Backend buffer, a
// mapped checkpoint or an AlignedBuffer.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/check.h"
#include "core/dtype.h"

namespace moe {

// A dtype-erased strided matrix: element (r, c) is at data + (r * row_stride + c) * size(dtype).
struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_stride = 0;  // elements between the starts of consecutive rows; >= cols

  static TensorView Contiguous(void* data, DType dtype, int64_t rows, int64_t cols) {
    return TensorView{data, dtype, rows, cols, cols};
  }

  size_t ElementSize() const { return DTypeSize(dtype); }
  bool IsContiguous() const { return row_stride == cols || rows <= 1; }
  // Bytes spanned from the first to one past the last element.
  size_t SpanBytes() const {
    return rows == 0 ? 0 : static_cast<size_t>((rows - 1) * row_stride + cols) * ElementSize();
  }

  void* Row(int64_t r) const {
    return static_cast<char*>(data) + static_cast<size_t>(r * row_stride) * ElementSize();
  }
  template <typename T>
  T* RowAs(int64_t r) const {
    return static_cast<T*>(Row(r));
  }

  // Rows [begin, begin + count).
  TensorView RowRange(int64_t begin, int64_t count) const {
    MOE_CHECK(begin >= 0 && count >= 0 && begin + count <= rows)
        << "rows [" << begin << ", " << begin + count << ") of " << rows;
    return TensorView{count == 0 ? data : Row(begin), dtype, count, cols, row_stride};
  }
  // Columns [begin, begin + count) of every row.
  TensorView ColRange(int64_t begin, int64_t count) const {
    MOE_CHECK(begin >= 0 && count >= 0 && begin + count <= cols)
        << "cols [" << begin << ", " << begin + count << ") of " << cols;
    return TensorView{static_cast<char*>(data) + static_cast<size_t>(begin) * ElementSize(), dtype,
                      rows, count, row_stride};
  }
};

// A typed strided matrix view for host code that knows its element type.
template <typename T>
struct MatrixView {
  T* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_stride = 0;

  T* Row(int64_t r) const { return data + r * row_stride; }
  T& operator()(int64_t r, int64_t c) const { return data[r * row_stride + c]; }
};

}  // namespace moe
