// Grouped expert GEMM on tensor cores (bf16 in, f32 accumulate, bf16 out), the two MoE
// projections of engine::GroupedGemmSwiGluArgs / GroupedGemmArgs:
//
//   kSwiGlu: h[r, f] = silu(A[r] . gate_e[f]) * (A[r] . up_e[f])   (out [R, n / 2])
//   kNone:   y[r, c] = A[r] . W_e[c]                              (out [R, n])
//
// for every row r of expert e's segment [expert_offsets[e], expert_offsets[e + 1]).
//
// Weight layout, per expert contiguous, experts back to back ([E, n, k] bf16, k contiguous):
// - kNone (down projection): W_e = the checkpoint's [H, F] row-major matrix as is.
// - kSwiGlu (gate+up): the [2F, H] interleave of moe_index_math.h (PackedGateRow /
//   PackedUpRow), built on the host by PackGateUpWeights from the checkpoint's gate and up
//   [F, H]; n = 2F.
//
// Row counts stay on the device: the launch needs only host-known bounds (row_capacity, E), and
// every CTA derives the tile schedule from expert_offsets itself (moe_index_math.h,
// DecodeGroupedTile). The kernel is persistent (grid = min(tiles bound, SMs x occupancy)).
//
// Numerics: each output is one f32 accumulation over k in ascending 16-wide steps (no split-K),
// rounded once to bf16. The accumulation order does not depend on the tile configuration or on
// the other rows, so results are bitwise identical for any batch composition (DESIGN.md §4).
//
// Host-only header.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "core/bf16.h"

namespace moe::cuda {

enum class GroupedGemmEpilogue {
  kNone,    // plain GEMM (down projection)
  kSwiGlu,  // gate+up with silu(g) * u fused; out has n / 2 columns
};

// Kernel configuration (tile shapes in moe_index_math.h). kAuto picks from the average rows per
// expert the host can infer (row_capacity / min(E, row_capacity)).
enum class GroupedGemmTile {
  kAuto,
  kM16,   // decode: weight streaming, 16 x 64 tiles
  kM64,   // mid-size batches, 64 x 128 tiles
  kM128,  // prefill: compute bound, 128 x 128 tiles
};

struct GroupedGemmProblem {
  int num_experts = 0;       // E in [1, 1024]
  int64_t row_capacity = 0;  // rows of the GEMM buffers; >= expert_offsets[E] (host-known bound)
  int n = 0;                 // output features of the weights (2F for kSwiGlu); % 8 (16 SwiGLU)
  int k = 0;                 // reduction size (H for gate+up, F for down); % 8 == 0
  int64_t lda = 0;           // elements between rows of A; 0 = k; % 8 == 0
  int64_t ldc = 0;           // elements between rows of out; 0 = output columns; even
  GroupedGemmEpilogue epilogue = GroupedGemmEpilogue::kNone;
  GroupedGemmTile tile = GroupedGemmTile::kAuto;
  // Persistent grid width in SMs: 0 = every SM of the current device (queried once per device);
  // fewer leaves SMs to work overlapping on other streams (nano-batch overlap).
  int num_sms = 0;
};

struct GroupedGemmBuffers {
  // [row_capacity, lda]; with a_row_index, the source matrix (e.g. x [T, lda]) instead.
  const Bf16* a = nullptr;
  // Optional [row_capacity]: GEMM row r reads A row a_row_index[r] (-1 = a zero row). Pass
  // Permute's row_to_token to fuse the permute gather into the gate+up GEMM.
  const int32_t* a_row_index = nullptr;
  const Bf16* weights = nullptr;            // [E, n, k], layout above; 16-byte aligned
  const int32_t* expert_offsets = nullptr;  // [E + 1], device, exclusive prefix of segment rows
  Bf16* out = nullptr;                      // [row_capacity, ldc]; rows outside segments untouched
};

// Output columns of the GEMM: n, or n / 2 with the SwiGLU epilogue.
inline int GroupedGemmOutputCols(const GroupedGemmProblem& p) {
  return p.epilogue == GroupedGemmEpilogue::kSwiGlu ? p.n / 2 : p.n;
}

// True when the kernels support the problem's sizes and strides (pointer alignment is checked
// at launch). Otherwise use the cuBLAS baseline (grouped_gemm_cublas.h).
bool GroupedGemmCanImplement(const GroupedGemmProblem& problem);

// The configuration kAuto resolves to (never kAuto).
GroupedGemmTile ResolveGroupedGemmTile(const GroupedGemmProblem& problem);

// The kernels keep the schedule in shared memory: no scratch. Provided for the contract.
inline size_t GroupedGemmWorkspaceSize(const GroupedGemmProblem&) { return 0; }

// Enqueues the grouped GEMM on `stream`. cudaErrorInvalidValue when !CanImplement or a buffer is
// missing/misaligned. Reads expert_offsets on the device only.
cudaError_t GroupedGemm(const GroupedGemmProblem& problem, const GroupedGemmBuffers& buffers,
                        void* workspace, size_t workspace_bytes, cudaStream_t stream);

// Host packing of one expert's gate and up [F, H] (row-major bf16) into the interleaved
// [2F, H] gate+up matrix the kSwiGlu kernel reads. F % 8 == 0.
void PackGateUpWeights(const Bf16* gate, const Bf16* up, int64_t f, int64_t h, Bf16* packed);

namespace internal {

// Kernel launch parameters shared by the launchers of both epilogues.
struct GroupedGemmLaunch {
  const void* a;
  const int32_t* a_row_index;
  int64_t lda;
  const void* weights;
  const int32_t* expert_offsets;
  void* out;
  int64_t ldc;
  int64_t row_capacity;
  int num_experts;
  int n;
  int k;
  int num_sms;
};

// Defined in grouped_gemm_swiglu.cu / grouped_gemm_plain.cu.
cudaError_t LaunchGroupedGemmSwiGlu(const GroupedGemmLaunch& launch, GroupedGemmTile tile,
                                    cudaStream_t stream);
cudaError_t LaunchGroupedGemmPlain(const GroupedGemmLaunch& launch, GroupedGemmTile tile,
                                   cudaStream_t stream);

}  // namespace internal
}  // namespace moe::cuda
