// Instantiations of the grouped GEMM with the plain epilogue (down projection).
#include "cuda/kernels/grouped_gemm.cuh"

namespace moe::cuda::internal {

cudaError_t LaunchGroupedGemmPlain(const GroupedGemmLaunch& launch, GroupedGemmTile tile,
                                   cudaStream_t stream) {
  return kernel::LaunchGroupedGemmTile<false>(launch, tile, stream);
}

}  // namespace moe::cuda::internal
