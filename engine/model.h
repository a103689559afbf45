// Model: the layer graph of a Qwen3-MoE / Mixtral / Qwen2-MoE / OLMoE decoder written over
// Backend ops, with Hugging Face semantics. Weights are packed into the backend once at Create();
// every activation buffer comes from a workspace sized once from ModelRuntimeConfig, so Forward
// allocates nothing on the backend.
//
// Threading: one thread (the engine/compute thread) calls Forward at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "batching/routing_trace.h"
#include "batching/token_batch.h"
#include "engine/backend.h"
#include "engine/kv_cache.h"
#include "model/model_config.h"
#include "model/model_weights.h"

namespace moe::engine {

struct ModelRuntimeConfig {
  DType activation_dtype = DType::kBF16;  // also the KV cache dtype
  int max_tokens = 512;                   // tokens per Forward
  int max_seqs = 64;                      // sequences per Forward
  int max_context = 4096;                 // highest position + 1 a sequence may reach
  int max_logit_rows = 0;                 // rows of logits per Forward; 0 = max_tokens
  int max_blocks_per_seq = 0;             // 0 = derived from max_context and the block size
  int block_size = 16;
  float router_top_p = 0.f;  // dynamic routing (0 = plain top-k)

  Status Validate() const;
};

using batching::RoutingTrace;

// Wall time per op category of one Forward, summed over the MoE layers. Measured only on
// host-synchronous backends (CPU): on an asynchronous one a host clock would time the launch.
struct ForwardOpTimes {
  int64_t expert_dispatch_ns = 0;  // Permute + UnpermuteCombine
  int64_t grouped_gemm_ns = 0;     // GroupedGemmSwiGlu + GroupedGemm
};

class Model {
 public:
  static StatusOr<std::unique_ptr<Model>> Create(const model::LoadedModel& loaded, Backend* backend,
                                                 const ModelRuntimeConfig& runtime);
  ~Model();

  // Computes K/V for every token of `batch` (written into `cache`) and the logits of
  // batch.logits_indices into `logits` (host memory, [logits_indices.size(), vocab], F32).
  // `trace` and `op_times` may be null (op_times is added to). On error nothing is guaranteed
  // about the KV contents of this step's slots; the caller treats those positions as not computed.
  Status Forward(const batching::TokenBatch& batch, const KvCache& cache, float* logits,
                 RoutingTrace* trace = nullptr, ForwardOpTimes* op_times = nullptr);

  const model::ModelConfig& config() const { return config_; }
  const ModelRuntimeConfig& runtime() const { return runtime_; }
  size_t packed_weight_bytes() const { return packed_weight_bytes_; }
  size_t workspace_bytes() const { return workspace_bytes_; }
  Backend* backend() const { return backend_; }

 private:
  struct LayerParams;
  struct Workspace;

  Model(const model::ModelConfig& config, Backend* backend, const ModelRuntimeConfig& runtime);
  Status PackWeights(const model::ModelWeights& weights);
  Status AllocateWorkspace();
  Status UploadBatch(const batching::TokenBatch& batch);
  Status AttentionBlock(int layer, const batching::TokenBatch& batch, const KvCache& cache,
                        int num_tokens);
  Status MoeBlock(int layer, int num_tokens, RoutingTrace* trace, ForwardOpTimes* times);
  Status DenseMlpBlock(int layer, int num_tokens);

  model::ModelConfig config_;
  Backend* backend_;
  ModelRuntimeConfig runtime_;
  std::unique_ptr<PackedEmbedding> embedding_;
  std::unique_ptr<Buffer> final_norm_;
  std::unique_ptr<PackedLinear> lm_head_;
  std::vector<std::unique_ptr<LayerParams>> layers_;
  std::unique_ptr<Workspace> ws_;
  size_t packed_weight_bytes_ = 0;
  size_t workspace_bytes_ = 0;
  std::vector<int32_t> host_block_tables_;  // staging for the flattened block tables
};

}  // namespace moe::engine
