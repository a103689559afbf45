// Router top-k launcher: validates, picks the registers-per-lane and logit-type instantiation.
#include "cuda/kernels/router_topk.cuh"

#include "cuda/kernels/moe_index_math.h"

namespace moe::cuda {
namespace {

template <typename TLogit>
cudaError_t Launch(const kernel::RouterTopKParams& params, int per_lane, cudaStream_t stream) {
  const dim3 block(32 * kernel::kRouterWarpsPerBlock);
  const dim3 grid(static_cast<unsigned>(CeilDiv(params.num_tokens, kernel::kRouterWarpsPerBlock)));
  switch (per_lane) {
    case 1:
      MOE_LAUNCH(grid, block, 0, stream, kernel::RouterTopKKernel<TLogit, 1>)(params);
      break;
    case 2:
      MOE_LAUNCH(grid, block, 0, stream, kernel::RouterTopKKernel<TLogit, 2>)(params);
      break;
    case 4:
      MOE_LAUNCH(grid, block, 0, stream, kernel::RouterTopKKernel<TLogit, 4>)(params);
      break;
    case 8:
      MOE_LAUNCH(grid, block, 0, stream, kernel::RouterTopKKernel<TLogit, 8>)(params);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace

bool RouterTopKCanImplement(const RouterTopKProblem& problem) {
  const int64_t stride = problem.logits_stride == 0 ? problem.num_experts : problem.logits_stride;
  return problem.num_tokens >= 0 && problem.num_experts >= 1 &&
         problem.num_experts <= kRouterMaxExperts && problem.top_k >= 1 &&
         problem.top_k <= problem.num_experts && problem.top_k <= kRouterMaxTopK &&
         stride >= problem.num_experts &&
         (problem.logits_dtype == DType::kF32 || problem.logits_dtype == DType::kBF16) &&
         !(problem.top_p < 0.f);
}

cudaError_t RouterTopK(const RouterTopKProblem& problem, const RouterTopKBuffers& buffers,
                       cudaStream_t stream) {
  if (!RouterTopKCanImplement(problem)) return cudaErrorInvalidValue;
  if (problem.num_tokens == 0) return cudaSuccess;
  if (buffers.logits == nullptr || buffers.expert_ids == nullptr ||
      buffers.expert_weights == nullptr) {
    return cudaErrorInvalidValue;
  }
  kernel::RouterTopKParams params{};
  params.logits = buffers.logits;
  params.logits_stride = problem.logits_stride == 0 ? problem.num_experts : problem.logits_stride;
  params.num_tokens = problem.num_tokens;
  params.num_experts = problem.num_experts;
  params.top_k = problem.top_k;
  params.mixtral = problem.scoring == RouterScoring::kTopKSoftmax;
  params.renormalize = problem.renormalize;
  params.top_p = problem.top_p;
  params.expert_ids = buffers.expert_ids;
  params.expert_weights = buffers.expert_weights;
  const int per_lane = RouterExpertsPerLane(problem.num_experts);
  if (problem.logits_dtype == DType::kBF16) {
    return Launch<__nv_bfloat16>(params, per_lane, stream);
  }
  return Launch<float>(params, per_lane, stream);
}

}  // namespace moe::cuda
