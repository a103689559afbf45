#include "engine/cpu/packed_matrix.h"

#include <cstring>

#include "engine/cpu/element.h"

namespace moe::engine::cpu {
namespace {

int64_t NumBlocks(int64_t rows) { return (rows + kBlockCols - 1) / kBlockCols; }

float LoadAny(const void* row, DType dtype, int64_t i) {
  return DispatchFloat(dtype, [&](auto tag) {
    using T = decltype(tag);
    return Load(static_cast<const T*>(row) + i);
  });
}

uint16_t Bf16BitsOf(const void* row, DType dtype, int64_t i) {
  if (dtype == DType::kBF16) return static_cast<const uint16_t*>(row)[i];
  return FloatToBf16Bits(LoadAny(row, dtype, i));
}

}  // namespace

DType PackedDTypeFor(const std::vector<const model::TensorEntry*>& sources) {
  for (const model::TensorEntry* t : sources) {
    if (t->dtype != DType::kBF16) return DType::kF32;
  }
  return DType::kBF16;
}

size_t PackedBytes(DType dtype, int64_t rows, int64_t cols) {
  const int64_t steps = dtype == DType::kBF16 ? (cols + 1) / 2 : cols;
  return static_cast<size_t>(NumBlocks(rows)) * static_cast<size_t>(steps) * kBlockCols * 4;
}

PackSource PackSource::Rows(const std::vector<const model::TensorEntry*>& tensors) {
  PackSource s;
  s.cols = tensors.front()->shape.size() < 2 ? 1 : tensors.front()->shape[1];
  for (const model::TensorEntry* t : tensors) {
    const int64_t rows = t->shape.empty() ? 1 : t->shape[0];
    const size_t row_bytes = static_cast<size_t>(s.cols) * DTypeSize(t->dtype);
    for (int64_t r = 0; r < rows; ++r) {
      s.row.push_back(static_cast<const char*>(t->data) + r * row_bytes);
      s.dtype.push_back(t->dtype);
    }
  }
  return s;
}

PackSource PackSource::GateUp(const model::TensorEntry& gate, const model::TensorEntry& up) {
  PackSource s;
  const int64_t f = gate.shape[0];
  s.cols = gate.shape[1];
  const int64_t blocks = (f + kHalfBlockCols - 1) / kHalfBlockCols;
  const size_t gate_row = static_cast<size_t>(s.cols) * DTypeSize(gate.dtype);
  const size_t up_row = static_cast<size_t>(s.cols) * DTypeSize(up.dtype);
  for (int64_t b = 0; b < blocks; ++b) {
    for (int half = 0; half < 2; ++half) {
      const model::TensorEntry& t = half == 0 ? gate : up;
      const size_t row_bytes = half == 0 ? gate_row : up_row;
      for (int c = 0; c < kHalfBlockCols; ++c) {
        const int64_t r = b * kHalfBlockCols + c;
        s.row.push_back(r < f ? static_cast<const char*>(t.data) + r * row_bytes : nullptr);
        s.dtype.push_back(t.dtype);
      }
    }
  }
  return s;
}

PackedMatrix PackedView(const PackSource& source, DType dtype, void* dst) {
  PackedMatrix m;
  m.data = dst;
  m.dtype = dtype;
  m.rows = source.num_rows();
  m.cols = source.cols;
  m.num_blocks = NumBlocks(m.rows);
  return m;
}

void PackBlocks(const PackSource& source, const PackedMatrix& view, int64_t block_begin,
                int64_t block_end) {
  const int64_t k = view.cols;
  const int64_t steps = view.KSteps();
  for (int64_t b = block_begin; b < block_end; ++b) {
    char* block = const_cast<char*>(view.Block(b));
    std::memset(block, 0, view.BlockBytes());
    for (int c = 0; c < kBlockCols; ++c) {
      const int64_t n = b * kBlockCols + c;
      if (n >= source.num_rows() || source.row[n] == nullptr) continue;
      const void* row = source.row[n];
      const DType dtype = source.dtype[n];
      if (view.dtype == DType::kBF16 && dtype == DType::kBF16) {
        // Raw pairs: one 32-bit copy per k pair.
        uint32_t* out = reinterpret_cast<uint32_t*>(block) + c;
        const uint16_t* in = static_cast<const uint16_t*>(row);
        for (int64_t i = 0; i < k / 2; ++i) {
          uint32_t pair;
          std::memcpy(&pair, in + 2 * i, 4);
          out[i * kBlockCols] = pair;
        }
        if (k % 2 != 0) out[(k / 2) * kBlockCols] = in[k - 1];  // little-endian: low half
      } else if (view.dtype == DType::kBF16) {
        uint16_t* out = reinterpret_cast<uint16_t*>(block) + 2 * c;
        for (int64_t i = 0; i < steps; ++i) {
          out[i * 2 * kBlockCols] = Bf16BitsOf(row, dtype, 2 * i);
          if (2 * i + 1 < k) out[i * 2 * kBlockCols + 1] = Bf16BitsOf(row, dtype, 2 * i + 1);
        }
      } else {
        float* out = reinterpret_cast<float*>(block) + c;
        for (int64_t i = 0; i < steps; ++i) out[i * kBlockCols] = LoadAny(row, dtype, i);
      }
    }
  }
}

}  // namespace moe::engine::cpu
