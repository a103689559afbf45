// ModelWeights: the checkpoint's tensors bound to their roles, after checking that every expected
// tensor is present with the shape the config implies and a float dtype (BF16, F16 or F32), and
// that nothing unexpected is there. The views point into the Checkpoint's mappings.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "model/safetensors.h"
#include "model/weight_names.h"

namespace moe::model {

struct LayerWeights {
  const TensorEntry* input_norm = nullptr;
  const TensorEntry* post_attn_norm = nullptr;
  const TensorEntry* q = nullptr;
  const TensorEntry* k = nullptr;
  const TensorEntry* v = nullptr;
  const TensorEntry* o = nullptr;
  const TensorEntry* q_bias = nullptr;  // null unless config.qkv_bias
  const TensorEntry* k_bias = nullptr;
  const TensorEntry* v_bias = nullptr;
  const TensorEntry* q_norm = nullptr;  // null when config.qk_norm == kNone
  const TensorEntry* k_norm = nullptr;
  // MoE layers.
  const TensorEntry* router = nullptr;
  std::vector<const TensorEntry*> expert_gate;  // [num_experts]
  std::vector<const TensorEntry*> expert_up;    // [num_experts]
  std::vector<const TensorEntry*> expert_down;  // [num_experts]
  const TensorEntry* shared_gate = nullptr;     // null without a shared expert
  const TensorEntry* shared_up = nullptr;
  const TensorEntry* shared_down = nullptr;
  const TensorEntry* shared_expert_gate = nullptr;
  // Dense MLP layers.
  const TensorEntry* mlp_gate = nullptr;
  const TensorEntry* mlp_up = nullptr;
  const TensorEntry* mlp_down = nullptr;
};

struct ModelWeights {
  const TensorEntry* embed = nullptr;
  const TensorEntry* final_norm = nullptr;
  const TensorEntry* lm_head = nullptr;  // == embed when tied
  std::vector<LayerWeights> layers;
};

// Binds and validates. Errors name the tensor and its file.
StatusOr<ModelWeights> BindWeights(const ModelConfig& config, const Checkpoint& checkpoint);

// A model directory opened for loading: config + mapped checkpoint + bound weights. The weights
// stay valid while this object lives; drop it after the backend has packed its own copies.
struct LoadedModel {
  std::string dir;
  ModelConfig config;
  std::unique_ptr<Checkpoint> checkpoint;
  ModelWeights weights;
};

StatusOr<std::unique_ptr<LoadedModel>> OpenModelDirectory(const std::string& dir);

}  // namespace moe::model
