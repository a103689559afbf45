// Instantiations of the grouped GEMM with the fused SwiGLU epilogue (gate+up projection). Kept
// apart from the plain epilogue so the two compile in parallel.
#include "cuda/kernels/grouped_gemm.cuh"

namespace moe::cuda::internal {

cudaError_t LaunchGroupedGemmSwiGlu(const GroupedGemmLaunch& launch, GroupedGemmTile tile,
                                    cudaStream_t stream) {
  return kernel::LaunchGroupedGemmTile<true>(launch, tile, stream);
}

}  // namespace moe::cuda::internal
