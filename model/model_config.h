// ModelConfig: the architecture facts of a model, read from a Hugging Face `config.json`.
// Supported: qwen3_moe, mixtral, qwen2_moe, olmoe. Anything we cannot run faithfully (an unknown
// model_type, rope scaling, a sliding window in use) is an error naming the field, never a
// silently different model.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace moe::model {

enum class ModelArch { kQwen3Moe, kMixtral, kQwen2Moe, kOlmoe };

// How q/k are normalised before RoPE.
enum class QkNormKind {
  kNone,     // Mixtral, Qwen2-MoE
  kPerHead,  // Qwen3: RMSNorm over head_dim with one weight [head_dim] shared by all heads
  kFull,     // OLMoE: RMSNorm over the whole projection (heads * head_dim)
};

// How router logits become expert weights.
enum class RouterKind {
  kSoftmaxTopK,  // softmax over all experts, top-k, renormalise when norm_topk_prob
  kTopKSoftmax,  // Mixtral: top-k logits, softmax over those k
};

std::string_view ModelArchName(ModelArch arch);  // the HF model_type

struct ModelConfig {
  ModelArch arch = ModelArch::kQwen3Moe;
  std::string model_type;    // as in config.json
  std::string architecture;  // architectures[0], e.g. "Qwen3MoeForCausalLM"

  int hidden_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int vocab_size = 0;
  int max_position_embeddings = 0;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;

  int num_experts = 0;
  int num_experts_per_tok = 0;
  int moe_intermediate_size = 0;  // per-expert F
  int intermediate_size = 0;      // dense MLP layers (mlp_only_layers / decoder_sparse_step)
  bool norm_topk_prob = true;
  int decoder_sparse_step = 1;
  std::vector<int> mlp_only_layers;
  int shared_expert_intermediate_size = 0;  // Qwen2-MoE; 0 = no shared expert

  bool qkv_bias = false;
  QkNormKind qk_norm = QkNormKind::kPerHead;
  RouterKind router = RouterKind::kSoftmaxTopK;
  bool tie_word_embeddings = false;
  DType torch_dtype = DType::kBF16;
  int bos_token_id = -1;  // -1 = none
  std::vector<int> eos_token_ids;
  // Generated models with expert specialisation record their cluster count
  // ("moeserve_expert_clusters"); 0 otherwise.
  int expert_clusters = 0;

  // Parses config.json text. `source` names the file in error messages.
  static StatusOr<ModelConfig> FromJson(const std::string& json_text, const std::string& source);
  // Reads `dir/config.json`.
  static StatusOr<ModelConfig> FromDirectory(const std::string& dir);

  // Checks internal consistency; errors name the field.
  Status Validate() const;

  // True when `layer` runs the sparse MoE block (otherwise a dense SwiGLU MLP).
  bool IsMoeLayer(int layer) const;
  int q_size() const { return num_heads * head_dim; }
  int kv_size() const { return num_kv_heads * head_dim; }
  // Parameter counts (embedding and lm_head included once each when untied).
  int64_t TotalParameters() const;
  // Parameters touched per token (k of E experts).
  int64_t ActiveParameters() const;
  // Parameters with `experts_counted` experts per MoE layer.
  int64_t CountParameters(int experts_counted) const;
};

std::ostream& operator<<(std::ostream& os, const ModelConfig& config);

}  // namespace moe::model
