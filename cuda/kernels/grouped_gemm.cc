// Grouped GEMM host side: problem validation, configuration choice, dispatch to the per-epilogue
// launchers, and the gate/up weight packing. Plain C++ (no device code).
#include "cuda/kernels/grouped_gemm.h"

#include <cstring>

#include "core/check.h"
#include "cuda/kernels/moe_index_math.h"

namespace moe::cuda {
namespace {

bool Aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

bool GroupedGemmCanImplement(const GroupedGemmProblem& p) {
  const bool swiglu = p.epilogue == GroupedGemmEpilogue::kSwiGlu;
  const int64_t lda = p.lda == 0 ? p.k : p.lda;
  const int64_t ldc = p.ldc == 0 ? GroupedGemmOutputCols(p) : p.ldc;
  return p.num_experts >= 1 && p.num_experts <= kGroupedGemmMaxExperts && p.row_capacity >= 0 &&
         p.row_capacity < (int64_t{1} << 31) && p.n > 0 && p.k > 0 && p.n % 8 == 0 &&
         (!swiglu || p.n % (2 * kGateUpInterleave) == 0) && p.k % 8 == 0 && lda >= p.k &&
         lda % 8 == 0 && ldc >= GroupedGemmOutputCols(p) && ldc % 2 == 0 && p.num_sms >= 0;
}

GroupedGemmTile ResolveGroupedGemmTile(const GroupedGemmProblem& p) {
  if (p.tile != GroupedGemmTile::kAuto) return p.tile;
  // Rows per active expert if the routing spreads evenly: the host's best guess without reading
  // the offsets. Decode batches land in kM16 (every weight byte read once per 16 rows).
  const int64_t active = MinI64(p.num_experts, p.row_capacity);
  const int64_t rows_per_expert = active > 0 ? CeilDiv(p.row_capacity, active) : 0;
  if (rows_per_expert <= 16) return GroupedGemmTile::kM16;
  if (rows_per_expert <= 64) return GroupedGemmTile::kM64;
  return GroupedGemmTile::kM128;
}

cudaError_t GroupedGemm(const GroupedGemmProblem& problem, const GroupedGemmBuffers& buffers,
                        void* /*workspace*/, size_t /*workspace_bytes*/, cudaStream_t stream) {
  if (!GroupedGemmCanImplement(problem)) return cudaErrorInvalidValue;
  if (problem.row_capacity == 0) return cudaSuccess;
  if (buffers.a == nullptr || buffers.weights == nullptr || buffers.expert_offsets == nullptr ||
      buffers.out == nullptr) {
    return cudaErrorInvalidValue;
  }
  if (!Aligned(buffers.a, 16) || !Aligned(buffers.weights, 16) || !Aligned(buffers.out, 4)) {
    return cudaErrorInvalidValue;
  }
  internal::GroupedGemmLaunch launch{};
  launch.a = buffers.a;
  launch.a_row_index = buffers.a_row_index;
  launch.lda = problem.lda == 0 ? problem.k : problem.lda;
  launch.weights = buffers.weights;
  launch.expert_offsets = buffers.expert_offsets;
  launch.out = buffers.out;
  launch.ldc = problem.ldc == 0 ? GroupedGemmOutputCols(problem) : problem.ldc;
  launch.row_capacity = problem.row_capacity;
  launch.num_experts = problem.num_experts;
  launch.n = problem.n;
  launch.k = problem.k;
  launch.num_sms = problem.num_sms;
  const GroupedGemmTile tile = ResolveGroupedGemmTile(problem);
  if (problem.epilogue == GroupedGemmEpilogue::kSwiGlu) {
    return internal::LaunchGroupedGemmSwiGlu(launch, tile, stream);
  }
  return internal::LaunchGroupedGemmPlain(launch, tile, stream);
}

void PackGateUpWeights(const Bf16* gate, const Bf16* up, int64_t f, int64_t h, Bf16* packed) {
  MOE_CHECK_EQ(f % kGateUpInterleave, 0) << "PackGateUpWeights: F must be a multiple of 8";
  const size_t row_bytes = static_cast<size_t>(h) * sizeof(Bf16);
  for (int64_t i = 0; i < f; ++i) {
    std::memcpy(packed + PackedGateRow(i) * h, gate + i * h, row_bytes);
    std::memcpy(packed + PackedUpRow(i) * h, up + i * h, row_bytes);
  }
}

}  // namespace moe::cuda
