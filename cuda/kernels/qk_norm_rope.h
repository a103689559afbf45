// Q/K RMSNorm (per head or over the full projection) followed by NeoX RoPE, in place: the
// semantics of engine::QkNormRopeArgs and the CPU reference.
//
// - Norm (Hugging Face rounding, like rmsnorm.h): v = round(w * round(v * rsqrt(mean(v^2)+eps)))
//   over each head_dim slice (kPerHead, one weight [head_dim] for all heads) or over the whole
//   row (kFull, weight [heads * head_dim]).
// - RoPE: pairs (i, i + head_dim/2) of every head rotate by angle = position * inv_freq[i]
//   (f32 product, as the reference), with cos/sin evaluated in double and rounded to f32; the
//   rotation's products and sums are explicitly unfused. inv_freq comes from the caller
//   (ComputeRopeInverseFrequencies: Hugging Face's f32 formula, bit-equal to the reference).
//
// One CTA per (token, q or k); per-row work only, so results do not depend on the batch.
//
// Host-only header.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/dtype.h"

namespace moe::cuda {

enum class QkNorm {
  kNone,
  kPerHead,
  kFull,
};

// The widest row (heads * head_dim) the kernel holds in shared memory.
inline constexpr int64_t kQkNormRopeMaxRow = 8192;

struct QkNormRopeProblem {
  int num_tokens = 0;          // >= 0
  int num_heads = 0;           // q heads >= 1
  int num_kv_heads = 0;        // k heads >= 1
  int head_dim = 0;            // even, >= 2
  DType dtype = DType::kBF16;  // of q and k: kF32 or kBF16
  int64_t q_stride = 0;        // elements; 0 = num_heads * head_dim
  int64_t k_stride = 0;        // elements; 0 = num_kv_heads * head_dim
  QkNorm norm = QkNorm::kNone;
  float eps = 1e-6f;
};

struct QkNormRopeBuffers {
  void* q = nullptr;                     // [num_tokens, q_stride]
  void* k = nullptr;                     // [num_tokens, k_stride]
  const int32_t* positions = nullptr;    // [num_tokens]
  const float* q_norm_weight = nullptr;  // [head_dim] or [num_heads * head_dim]; kNone: unused
  const float* k_norm_weight = nullptr;  // [head_dim] or [num_kv_heads * head_dim]
  const float* inv_freq = nullptr;       // [head_dim / 2], device
};

bool QkNormRopeCanImplement(const QkNormRopeProblem& problem);
inline size_t QkNormRopeWorkspaceSize(const QkNormRopeProblem&) { return 0; }

cudaError_t QkNormRope(const QkNormRopeProblem& problem, const QkNormRopeBuffers& buffers,
                       cudaStream_t stream);

// Host: inv_freq[i] = 1 / theta^(2i / head_dim) for i < head_dim / 2, computed exactly as
// Hugging Face (and engine/cpu/reference_ops.cc RopeInverseFrequencies) do in f32.
void ComputeRopeInverseFrequencies(int head_dim, double theta, float* inv_freq);

}  // namespace moe::cuda
