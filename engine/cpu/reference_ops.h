// The naive CPU reference of every Backend op: plain loops, F32 accumulation in a fixed order,
// one rounding to the output dtype. It is the oracle for every optimized CPU and CUDA kernel, so
// it stays obviously correct rather than fast. Work is split across rows only (never across a
// reduction), so results do not depend on the thread count or on which other rows are present.
//
// All pointers are host pointers. `pool` may be null (single-threaded).
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor_view.h"
#include "core/thread_pool.h"
#include "engine/backend.h"

namespace moe::engine::cpu::ref {

// One expert's weights in source layout: gate_up [2F, H] (gate rows, then up rows), down [H, F].
struct ExpertMatrices {
  TensorView gate_up;
  TensorView down;
};

void Embed(const int32_t* token_ids, int num_tokens, TensorView table, TensorView out,
           ThreadPool* pool);
// HF semantics: out = w * round(x * rsqrt(mean(x²) + eps)), rounding to out's dtype.
void RmsNorm(TensorView x, TensorView add, const float* weight, float eps, TensorView out,
             ThreadPool* pool);
// out[t, n] = sum_k x[t, k] * w[n, k] (+ bias[n]); w [N, K] in any float dtype.
void Linear(TensorView x, TensorView w, const float* bias, TensorView out, ThreadPool* pool);
void QkNormRope(const QkNormRopeArgs& args, ThreadPool* pool);
void KvWrite(const KvWriteArgs& args);
// `scratch` holds at least max_context floats per thread of `pool` (or one when pool is null).
void Attention(const AttentionArgs& args, float* scratch, int64_t scratch_per_thread,
               ThreadPool* pool);
void RouterTopK(const RouterTopKArgs& args);
void Permute(const PermuteArgs& args);
void GroupedGemmSwiGlu(TensorView rows, const int32_t* expert_offsets,
                       const std::vector<ExpertMatrices>& experts, TensorView out,
                       ThreadPool* pool);
void GroupedGemm(TensorView h, const int32_t* expert_offsets,
                 const std::vector<ExpertMatrices>& experts, TensorView out, ThreadPool* pool);
void UnpermuteCombine(const UnpermuteCombineArgs& args, ThreadPool* pool);
void SiluMul(TensorView x, TensorView out, ThreadPool* pool);
void GatherRows(TensorView x, const int32_t* indices, int num_indices, TensorView out);

// RoPE inverse frequencies as Hugging Face computes them (float32): 1 / theta^(2i / head_dim).
std::vector<float> RopeInverseFrequencies(int head_dim, double theta);

}  // namespace moe::engine::cpu::ref
