// The Backend contract (DESIGN.md §3): the ops the model is written in. The CPU reference
// backend, the optimized CPU backend, the CUDA backend and the simulated backend implement it.
//
// Rules every implementation keeps:
// - Every op takes explicit sizes and a Stream last; it allocates nothing (scratch is sized once
//   by Reserve()) and reports failure as a Status.
// - Pointers and TensorViews passed to ops point into backend memory (Allocate()); host data
//   reaches the backend only through CopyToDevice.
// - Weight layouts are the backend's business: Pack*() copies checkpoint tensors into whatever
//   layout its kernels want; the checkpoint mapping may be released afterwards.
// - Routing may give a token fewer than k experts (expert id -1): Permute and UnpermuteCombine
//   handle 0..k rows per token.
// - Numerics: activations are F32 or BF16 (TensorView::dtype); accumulation is F32. Each op rounds
//   its result once to the output dtype. On the CPU, a row's result depends only on that row
//   (batch invariance, DESIGN.md §4).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor_view.h"
#include "model/model_config.h"
#include "model/safetensors.h"

namespace moe::engine {

// An execution queue. CPU backends run ops to completion in call order; CUDA maps the index to
// one of its streams.
struct Stream {
  int index = 0;
};

// Memory owned by a backend (device memory on a GPU, host memory on the CPU).
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual void* data() const = 0;
  virtual size_t size() const = 0;
  template <typename T>
  T* as() const {
    return static_cast<T*>(data());
  }
};

// A dense weight matrix [out_features, in_features] (+ optional bias [out_features]) in the
// backend's layout.
class PackedLinear {
 public:
  virtual ~PackedLinear() = default;
  int64_t out_features = 0;
  int64_t in_features = 0;
  bool has_bias = false;
  size_t packed_bytes = 0;
};

// The experts of one MoE layer: per expert, gate and up [F, H] and down [H, F].
class PackedExperts {
 public:
  virtual ~PackedExperts() = default;
  int num_experts = 0;
  int64_t hidden = 0;        // H
  int64_t intermediate = 0;  // F
  size_t packed_bytes = 0;
};

// An embedding table [vocab, H].
class PackedEmbedding {
 public:
  virtual ~PackedEmbedding() = default;
  int64_t vocab = 0;
  int64_t hidden = 0;
  size_t packed_bytes = 0;
};

// Sources for packing: tensors of a mapped checkpoint.
struct LinearSource {
  // Concatenated along the output dimension (e.g. {q, k, v} for a fused QKV projection, or
  // {gate, up}); each [rows_i, in_features].
  std::vector<const model::TensorEntry*> row_blocks;
  // Either empty or one bias [rows_i] per row block.
  std::vector<const model::TensorEntry*> biases;
};

struct ExpertsSource {
  std::vector<const model::TensorEntry*> gate;  // [E] of [F, H]
  std::vector<const model::TensorEntry*> up;    // [E] of [F, H]
  std::vector<const model::TensorEntry*> down;  // [E] of [H, F]
};

// The checks every backend's packing starts with (backend.cc): matrix shapes that agree, bias
// lengths that match their row blocks, float dtypes. Errors name the tensor and its file.
struct LinearShape {
  int64_t rows = 0;  // out_features: the row blocks' rows summed
  int64_t cols = 0;  // in_features
};
StatusOr<LinearShape> CheckLinearSource(const LinearSource& source);
struct ExpertsShape {
  int num_experts = 0;
  int64_t hidden = 0;        // H
  int64_t intermediate = 0;  // F
};
StatusOr<ExpertsShape> CheckExpertsSource(const ExpertsSource& source);

// Upper bounds for one step, fixed at start-up; Reserve() sizes all scratch from them.
struct BackendLimits {
  int max_tokens = 0;   // tokens in one forward call
  int max_seqs = 0;     // sequences in one forward call
  int max_context = 0;  // positions a sequence can reach
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int hidden = 0;
  int num_experts = 0;
  int top_k = 0;
  int64_t max_intermediate = 0;  // largest expert / MLP intermediate size
};

// One layer's paged KV cache: slot = block * block_size + offset_in_block.
struct KvCacheView {
  TensorView k;  // [num_blocks * block_size, kv_heads * head_dim]
  TensorView v;  // [num_blocks * block_size, kv_heads * head_dim]
  int block_size = 16;
};

struct EmbedArgs {
  const int32_t* token_ids = nullptr;  // [num_tokens]
  int num_tokens = 0;
  const PackedEmbedding* table = nullptr;
  TensorView out;  // [num_tokens, H]
};

// out = RmsNorm(x) * weight. When `add` is given, x is first updated in place to x + add
// (rounded to x's dtype): the residual stream update fused with the next norm.
struct RmsNormArgs {
  TensorView x;                   // [T, H]
  TensorView add;                 // [T, H], or data == nullptr for none
  const float* weight = nullptr;  // [H]
  float eps = 1e-6f;
  TensorView out;  // [T, H]
};

// out = x · Wᵀ (+ bias). The output dtype may differ from the input's (e.g. F32 logits).
struct LinearArgs {
  TensorView x;  // [T, in_features]
  const PackedLinear* weight = nullptr;
  TensorView out;  // [T, out_features]
};

// Per-head (or full-width) RMSNorm of q and k, then NeoX RoPE, in place.
struct QkNormRopeArgs {
  TensorView q;                        // [T, num_heads * head_dim]
  TensorView k;                        // [T, num_kv_heads * head_dim]
  const int32_t* positions = nullptr;  // [T]
  int num_tokens = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  model::QkNormKind norm = model::QkNormKind::kNone;
  const float* q_norm_weight = nullptr;  // [head_dim] (per-head) or [num_heads * head_dim] (full)
  const float* k_norm_weight = nullptr;  // [head_dim] or [num_kv_heads * head_dim]
  float eps = 1e-6f;
  float rope_theta = 10000.f;
};

// Writes each token's k and v into its cache slot (rounded to the cache dtype).
struct KvWriteArgs {
  TensorView k;                           // [T, kv_heads * head_dim]
  TensorView v;                           // [T, kv_heads * head_dim]
  const int64_t* slot_mapping = nullptr;  // [T]; -1 = do not write
  int num_tokens = 0;
  KvCacheView cache;
};

// Ragged causal attention over the paged cache. Sequence s owns query rows
// [query_start[s], query_start[s + 1]); a query at position p attends to that sequence's cached
// keys at positions [0, p] (and > p - sliding_window when a window is set), which must already be
// in the cache (KvWrite runs first, so in-step keys are read back after their rounding).
struct AttentionArgs {
  TensorView q;  // [T, num_heads * head_dim]
  KvCacheView cache;
  const int32_t* query_start = nullptr;   // [num_seqs + 1], exclusive prefix sum of query rows
  const int32_t* positions = nullptr;     // [T]
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq]
  int max_blocks_per_seq = 0;
  int num_seqs = 0;
  int num_tokens = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  float scale = 1.f;
  int sliding_window = 0;  // 0 = none
  TensorView out;          // [T, num_heads * head_dim]
};

// Router logits -> per-token expert ids and weights.
struct RouterTopKArgs {
  TensorView logits;  // [T, E]
  int num_tokens = 0;
  int num_experts = 0;
  int top_k = 0;
  model::RouterKind kind = model::RouterKind::kSoftmaxTopK;
  bool renormalize = true;  // kSoftmaxTopK: divide the k weights by their sum
  // Dynamic routing: when > 0, keep the fewest top experts whose softmax mass reaches top_p (at
  // most top_k); the remaining slots get expert id -1 and weight 0.
  float top_p = 0.f;
  int32_t* expert_ids = nullptr;    // [T, top_k]; -1 = no expert; ties go to the lower id
  float* expert_weights = nullptr;  // [T, top_k]
};

// Token rows -> rows grouped by expert (ascending expert id; within an expert, ascending token
// then slot), with per-expert offsets and both directions of the row map.
struct PermuteArgs {
  TensorView x;                         // [T, H]
  const int32_t* expert_ids = nullptr;  // [T, top_k]; -1 = none
  int num_tokens = 0;
  int top_k = 0;
  int num_experts = 0;
  TensorView rows;                    // [T * top_k (capacity), H]; first R rows written
  int32_t* expert_offsets = nullptr;  // [num_experts + 1], exclusive prefix sum; R = last entry
  int32_t* row_to_token = nullptr;    // [T * top_k]; token of each of the R rows
  int32_t* slot_to_row = nullptr;     // [T, top_k]; row of (token, slot), -1 = none
};

// For each expert e: h[r] = silu(rows[r] · gate_eᵀ) * (rows[r] · up_eᵀ) for r in its segment.
struct GroupedGemmSwiGluArgs {
  TensorView rows;                          // [capacity, H]
  const int32_t* expert_offsets = nullptr;  // [num_experts + 1]
  const PackedExperts* experts = nullptr;
  TensorView out;  // [capacity, F]
};

// For each expert e: y[r] = h[r] · down_eᵀ for r in its segment.
struct GroupedGemmArgs {
  TensorView h;                             // [capacity, F]
  const int32_t* expert_offsets = nullptr;  // [num_experts + 1]
  const PackedExperts* experts = nullptr;
  TensorView out;  // [capacity, H]
};

// y[t] = sum over slots j in order 0..k-1 with a row of weight[t, j] * y_rows[row(t, j)]
// (+ shared[t] scaled by sigmoid(shared_gate[t]) when given). Tokens with no experts get zeros
// (plus the shared part).
struct UnpermuteCombineArgs {
  TensorView y_rows;                      // [capacity, H]
  const int32_t* slot_to_row = nullptr;   // [T, top_k]
  const float* expert_weights = nullptr;  // [T, top_k]
  int num_tokens = 0;
  int top_k = 0;
  TensorView shared;       // [T, H] shared-expert output, or data == nullptr
  TensorView shared_gate;  // [T, 1] logits of the shared-expert gate, or data == nullptr (gate 1)
  TensorView out;          // [T, H]
};

// out[t] = silu(x[t, :F]) * x[t, F:2F]: the activation of a fused gate|up projection.
struct SiluMulArgs {
  TensorView x;    // [T, 2F]
  TensorView out;  // [T, F]
};

// out[i] = x[indices[i]].
struct GatherRowsArgs {
  TensorView x;                      // [T, H]
  const int32_t* indices = nullptr;  // [n]
  int num_indices = 0;
  TensorView out;  // [n, H]
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string Name() const = 0;
  // True when device memory is host-addressable (CPU backends).
  virtual bool HostAddressable() const = 0;

  // Memory.
  virtual StatusOr<std::unique_ptr<Buffer>> Allocate(size_t bytes) = 0;
  virtual Status CopyToDevice(void* dst, const void* src, size_t bytes, Stream stream) = 0;
  virtual Status CopyToHost(void* dst, const void* src, size_t bytes, Stream stream) = 0;
  virtual Status Fill(void* dst, uint8_t byte, size_t bytes, Stream stream) = 0;
  virtual Status Synchronize(Stream stream) = 0;
  // Sizes all op scratch; called once before the first op.
  virtual Status Reserve(const BackendLimits& limits) = 0;

  // Weights.
  virtual StatusOr<std::unique_ptr<PackedLinear>> PackLinear(const LinearSource& source) = 0;
  virtual StatusOr<std::unique_ptr<PackedExperts>> PackExperts(const ExpertsSource& source) = 0;
  virtual StatusOr<std::unique_ptr<PackedEmbedding>> PackEmbedding(
      const model::TensorEntry& table) = 0;
  // A 1-D tensor (norm weights) as F32 in backend memory.
  virtual StatusOr<std::unique_ptr<Buffer>> UploadF32(const model::TensorEntry& vector) = 0;

  // Ops.
  virtual Status Embed(const EmbedArgs& args, Stream stream) = 0;
  virtual Status RmsNorm(const RmsNormArgs& args, Stream stream) = 0;
  virtual Status Linear(const LinearArgs& args, Stream stream) = 0;
  virtual Status QkNormRope(const QkNormRopeArgs& args, Stream stream) = 0;
  virtual Status KvWrite(const KvWriteArgs& args, Stream stream) = 0;
  virtual Status Attention(const AttentionArgs& args, Stream stream) = 0;
  virtual Status RouterTopK(const RouterTopKArgs& args, Stream stream) = 0;
  virtual Status Permute(const PermuteArgs& args, Stream stream) = 0;
  virtual Status GroupedGemmSwiGlu(const GroupedGemmSwiGluArgs& args, Stream stream) = 0;
  virtual Status GroupedGemm(const GroupedGemmArgs& args, Stream stream) = 0;
  virtual Status UnpermuteCombine(const UnpermuteCombineArgs& args, Stream stream) = 0;
  virtual Status SiluMul(const SiluMulArgs& args, Stream stream) = 0;
  virtual Status GatherRows(const GatherRowsArgs& args, Stream stream) = 0;
};

}  // namespace moe::engine
