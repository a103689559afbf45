// The CPU GEMM kernels behind Linear, GroupedGemmSwiGlu and GroupedGemm: y = x · Wᵀ for a set
// of rows against column blocks of one PackedMatrix, with a fused epilogue.
//
// One kernel family serves every row count: rows are processed in register tiles of up to MR
// rows, and every output element is one accumulation over k = 0..K-1 in the same order with the
// same instructions whatever MR, the row's position in the tile, the other rows, the column
// block range or the thread is. So a row's output is bit-identical at M = 1 and M = 512 (no
// GEMV/GEMM split, no split-K): DESIGN.md §4.
//
// Arithmetic per ISA (F32 accumulation everywhere, one rounding to the output dtype):
//   avx512bf16: BF16 activations x BF16 weights: vdpbf16ps on k pairs (the fast path).
//               F32 activations: weights widened exactly to F32, FMA per k.
//               F32 weights (f16/f32 checkpoints): activations widened, FMA per k.
//   avx2:       always widen to F32, FMA per k.
//   scalar:     widen to F32, acc = acc + a * w per k (separately rounded, as the reference).
#pragma once

#include <cstdint>

#include "core/tensor_view.h"
#include "engine/cpu/cpu_features.h"
#include "engine/cpu/packed_matrix.h"

namespace moe::engine::cpu {

enum class GemmEpilogue {
  kStore,   // out[m, n] = acc (+ bias[n]), n in the blocks' columns below w->rows
  kSwiGlu,  // out[m, 32 b + c] = silu(acc_gate) * acc_up (gate|up packed by PackSource::GateUp)
};

struct GemmTask {
  TensorView a;  // [m, K] activation rows, F32 or BF16
  const PackedMatrix* w = nullptr;
  int64_t block_begin = 0;  // column blocks [block_begin, block_end) of w
  int64_t block_end = 0;
  GemmEpilogue epilogue = GemmEpilogue::kStore;
  const float* bias = nullptr;  // [w->rows] or null (kStore only)
  // kStore: [m, >= w->rows]; kSwiGlu: [m, F] with F <= 32 * w->num_blocks. F32 or BF16.
  TensorView out;
  // True when the task is the first to touch its blocks this op (streams them from memory):
  // the kernel prefetches ahead then.
  bool cold = true;
};

using GemmKernel = void (*)(const GemmTask& task);

// The kernel of `isa` (kAuto is not a kernel: resolve it first).
GemmKernel GemmKernelFor(CpuIsa isa);

// Largest register tile (rows) of each kernel; callers may cut row ranges at any multiple.
int GemmTileRows(CpuIsa isa);

// SiluMul of rows [begin, end): out[t, f] = silu(x[t, f]) * x[t, F + f] with the same SiLU as
// the kSwiGlu epilogue of the same ISA.
using SiluMulKernel = void (*)(const TensorView& x, const TensorView& out, int64_t begin,
                               int64_t end);
SiluMulKernel SiluMulKernelFor(CpuIsa isa);

namespace internal {
void GemmScalar(const GemmTask& task);
void GemmAvx2(const GemmTask& task);
void GemmAvx512(const GemmTask& task);
void SiluMulScalar(const TensorView& x, const TensorView& out, int64_t begin, int64_t end);
void SiluMulAvx2(const TensorView& x, const TensorView& out, int64_t begin, int64_t end);
void SiluMulAvx512(const TensorView& x, const TensorView& out, int64_t begin, int64_t end);
}  // namespace internal

}  // namespace moe::engine::cpu
