// PackedMatrix: a dense weight matrix W [N, K] (y = x · Wᵀ) re-laid out once at load time for the
// CPU GEMM kernels (gemm.h).
//
// Columns of y are cut into blocks of kBlockCols = 64 (the last block zero-padded). Within a
// block the weights are stored K-major so that one 64-byte load feeds 16 output columns:
//   BF16 (bf16 checkpoints): [num_blocks][ceil(K/2)][64][2] — VNNI-2 pairs (w[n][2i], w[n][2i+1])
//        exactly as vdpbf16ps consumes them; an odd K is padded with a zero.
//   F32  (f16/f32 checkpoints, exact widening): [num_blocks][K][64].
// Each block is contiguous, so a GEMM streams a block's weights once, front to back, and every
// token routed to it reuses them from cache.
//
// The fused expert gate|up matrix interleaves per block: block b holds gate rows [32b, 32b + 32)
// in its first 32 columns and up rows [32b, 32b + 32) in its last 32, so the SwiGLU epilogue
// finds silu(gate) and its up partner in the same accumulator tile.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "model/safetensors.h"

namespace moe::engine::cpu {

inline constexpr int kBlockCols = 64;
inline constexpr int kHalfBlockCols = kBlockCols / 2;

struct PackedMatrix {
  const void* data = nullptr;  // see the layout above; 64-byte aligned
  DType dtype = DType::kBF16;  // kBF16 or kF32
  int64_t rows = 0;            // N: logical output columns (for gate|up: 2F)
  int64_t cols = 0;            // K: reduction length
  int64_t num_blocks = 0;

  // Rows of a block: K pairs (BF16) or K (F32); each row is 64 columns x 4 bytes either way.
  int64_t KSteps() const { return dtype == DType::kBF16 ? (cols + 1) / 2 : cols; }
  size_t BlockBytes() const { return static_cast<size_t>(KSteps()) * kBlockCols * 4; }
  const char* Block(int64_t b) const {
    return static_cast<const char*>(data) + static_cast<size_t>(b) * BlockBytes();
  }
  size_t TotalBytes() const { return static_cast<size_t>(num_blocks) * BlockBytes(); }
};

// The packed dtype for sources of these dtypes: BF16 when all are BF16, else F32.
DType PackedDTypeFor(const std::vector<const model::TensorEntry*>& sources);

// Bytes of a packed matrix of `rows` x `cols` (rows padded to whole blocks).
size_t PackedBytes(DType dtype, int64_t rows, int64_t cols);

// The rows of a matrix to pack: output column n of W comes from `row[n]` (K elements of
// `dtype[n]`), or is zero padding when row[n] is null.
struct PackSource {
  std::vector<const void*> row;
  std::vector<DType> dtype;
  int64_t cols = 0;

  // The concatenation of `tensors` (each [rows_i, cols]).
  static PackSource Rows(const std::vector<const model::TensorEntry*>& tensors);
  // gate [F, H] and up [F, H] interleaved per block (see above): 2 * ceil(F / 32) * 32 rows.
  static PackSource GateUp(const model::TensorEntry& gate, const model::TensorEntry& up);
  int64_t num_rows() const { return static_cast<int64_t>(row.size()); }
};

// The packed view of `source` stored at `dst` (PackedBytes() bytes, 64-byte aligned).
PackedMatrix PackedView(const PackSource& source, DType dtype, void* dst);
// Writes blocks [block_begin, block_end) of `view` from `source` (blocks are independent, so
// callers may pack them in parallel).
void PackBlocks(const PackSource& source, const PackedMatrix& view, int64_t block_begin,
                int64_t block_end);

}  // namespace moe::engine::cpu
