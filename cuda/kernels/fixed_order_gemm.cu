// Fixed-order GEMM launcher: validates, picks the tile configuration (which never changes the
// result bits) and the type/epilogue instantiation.
#include "cuda/kernels/fixed_order_gemm.cuh"

namespace moe::cuda {
namespace {

bool IsFloat(DType d) { return d == DType::kF32 || d == DType::kBF16; }

// Small: up to 8 rows per tile (decode: weight streaming over wide n tiles). Large: 64 x 64.
enum class Config { kSmall, kLarge };

template <typename TA, typename TOut, bool kSwiGlu>
cudaError_t Launch(const kernel::FixedGemmParams& p, Config config, int64_t m_tiles_small,
                   int64_t m_tiles_large, cudaStream_t stream) {
  if (config == Config::kSmall) {
    constexpr int kBM = 8, kBN = 128;
    const dim3 grid(static_cast<unsigned>(m_tiles_small), static_cast<unsigned>(CeilDiv(p.n, kBN)));
    MOE_LAUNCH(grid, kernel::kFixedGemmThreads, 0, stream,
               kernel::FixedOrderGemmKernel<TA, TOut, kSwiGlu, kBM, kBN, 1, 4>)
    (p);
  } else {
    constexpr int kBM = 64, kBN = 64;
    const dim3 grid(static_cast<unsigned>(m_tiles_large), static_cast<unsigned>(CeilDiv(p.n, kBN)));
    MOE_LAUNCH(grid, kernel::kFixedGemmThreads, 0, stream,
               kernel::FixedOrderGemmKernel<TA, TOut, kSwiGlu, kBM, kBN, 4, 4>)
    (p);
  }
  return cudaGetLastError();
}

template <typename TA, typename TOut>
cudaError_t LaunchEpilogue(const kernel::FixedGemmParams& p, bool swiglu, Config config,
                           int64_t small, int64_t large, cudaStream_t stream) {
  return swiglu ? Launch<TA, TOut, true>(p, config, small, large, stream)
                : Launch<TA, TOut, false>(p, config, small, large, stream);
}

// M-tiles the grid needs: dense ceil(M / bm); grouped, every non-empty segment may end in a
// partial tile: ceil(rows / bm) + min(G, rows).
int64_t MTiles(int64_t rows, int groups, bool grouped, int bm) {
  return CeilDiv(rows, bm) + (grouped ? MinI64(groups, rows) : 0);
}

}  // namespace

bool FixedOrderGemmCanImplement(const FixedGemmProblem& p) {
  const bool swiglu = p.epilogue == FixedGemmEpilogue::kSwiGluInterleaved;
  const int64_t lda = p.lda == 0 ? p.k : p.lda;
  const int64_t ldc = p.ldc == 0 ? p.n : p.ldc;
  return p.num_groups >= 1 && p.num_groups <= kGroupedGemmMaxExperts && p.rows >= 0 &&
         p.rows < (int64_t{1} << 31) && p.n >= 1 && p.k >= 1 && IsFloat(p.a_dtype) &&
         IsFloat(p.out_dtype) && lda >= p.k && ldc >= p.n &&
         (!swiglu || p.n % kGateUpInterleave == 0) && CeilDiv(p.n, 64) <= 65535 &&
         MTiles(p.rows, p.num_groups, true, 8) < (int64_t{1} << 31);
}

cudaError_t FixedOrderGemm(const FixedGemmProblem& problem, const FixedGemmBuffers& buffers,
                           cudaStream_t stream) {
  if (!FixedOrderGemmCanImplement(problem)) return cudaErrorInvalidValue;
  if (problem.rows == 0) return cudaSuccess;
  const bool grouped = buffers.expert_offsets != nullptr;
  if (buffers.a == nullptr || buffers.weights == nullptr || buffers.out == nullptr ||
      (!grouped && problem.num_groups != 1)) {
    return cudaErrorInvalidValue;
  }
  const bool swiglu = problem.epilogue == FixedGemmEpilogue::kSwiGluInterleaved;
  if (swiglu && buffers.bias != nullptr) return cudaErrorInvalidValue;
  kernel::FixedGemmParams p{};
  p.a = buffers.a;
  p.lda = problem.lda == 0 ? problem.k : problem.lda;
  p.w = reinterpret_cast<const __nv_bfloat16*>(buffers.weights);
  p.w_group_stride = static_cast<int64_t>(swiglu ? 2 * problem.n : problem.n) * problem.k;
  p.bias = buffers.bias;
  p.expert_offsets = buffers.expert_offsets;
  p.num_groups = problem.num_groups;
  p.rows = problem.rows;
  p.n = problem.n;
  p.k = problem.k;
  p.out = buffers.out;
  p.ldc = problem.ldc == 0 ? problem.n : problem.ldc;
  // Rows per group the host can expect (the offsets stay on the device).
  const int64_t active = grouped ? MinI64(problem.num_groups, problem.rows) : 1;
  const int64_t rows_per_group = CeilDiv(problem.rows, active);
  const Config config = rows_per_group <= 8 ? Config::kSmall : Config::kLarge;
  const int64_t small = MTiles(problem.rows, problem.num_groups, grouped, 8);
  const int64_t large = MTiles(problem.rows, problem.num_groups, grouped, 64);
  if (problem.a_dtype == DType::kF32) {
    return problem.out_dtype == DType::kF32
               ? LaunchEpilogue<float, float>(p, swiglu, config, small, large, stream)
               : LaunchEpilogue<float, __nv_bfloat16>(p, swiglu, config, small, large, stream);
  }
  return problem.out_dtype == DType::kF32
             ? LaunchEpilogue<__nv_bfloat16, float>(p, swiglu, config, small, large, stream)
             : LaunchEpilogue<__nv_bfloat16, __nv_bfloat16>(p, swiglu, config, small, large,
                                                            stream);
}

}  // namespace moe::cuda
