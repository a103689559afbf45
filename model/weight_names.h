// The tensors a model of a given architecture has: Hugging Face names, shapes and roles. The
// checkpoint binder (model_weights.h) and the random-model generator (random_model.h) both work
// from this one list, so a generated model always has exactly what the loader expects.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/model_config.h"

namespace moe::model {

enum class WeightRole {
  kEmbed,             // [vocab, H]
  kFinalNorm,         // [H]
  kLmHead,            // [vocab, H] (absent when tied)
  kInputNorm,         // [H]
  kPostAttnNorm,      // [H]
  kQ,                 // [heads * head_dim, H]
  kK,                 // [kv_heads * head_dim, H]
  kV,                 // [kv_heads * head_dim, H]
  kO,                 // [H, heads * head_dim]
  kQBias,             // [heads * head_dim]
  kKBias,             // [kv_heads * head_dim]
  kVBias,             // [kv_heads * head_dim]
  kQNorm,             // [head_dim] per-head, or [heads * head_dim] full
  kKNorm,             // [head_dim] per-head, or [kv_heads * head_dim] full
  kRouter,            // [E, H]
  kExpertGate,        // [F, H]
  kExpertUp,          // [F, H]
  kExpertDown,        // [H, F]
  kSharedGate,        // [Fs, H]
  kSharedUp,          // [Fs, H]
  kSharedDown,        // [H, Fs]
  kSharedExpertGate,  // [1, H]
  kMlpGate,           // [I, H] dense MLP layer
  kMlpUp,             // [I, H]
  kMlpDown,           // [H, I]
};

bool IsNormRole(WeightRole role);
bool IsBiasRole(WeightRole role);

struct WeightSpec {
  std::string name;  // Hugging Face tensor name
  WeightRole role;
  int layer = -1;   // -1 for model-level tensors
  int expert = -1;  // -1 unless an expert tensor
  std::vector<int64_t> shape;
};

// Every tensor the model must have, in a stable order (embedding, layers in order, final norm,
// lm_head).
std::vector<WeightSpec> ExpectedWeights(const ModelConfig& config);

// Tensors a checkpoint may carry that the model does not use (e.g. rotary inv_freq buffers, an
// lm_head next to tied embeddings).
bool IsIgnorableTensor(const ModelConfig& config, const std::string& name);

}  // namespace moe::model
