// Deterministic random-weight models, written as Hugging Face directories (config.json +
// model.safetensors with HF tensor names) that `transformers` would load. The same preset and
// seed always give the same bytes, whatever the thread count.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "model/model_config.h"

namespace moe::model {

struct RandomModelOptions {
  std::string preset = "tiny";  // tiny | bench | demo
  uint64_t seed = 0;
  std::string out_dir;
  // Expert specialisation: token embeddings drawn around `num_clusters` centres (vocabulary split
  // into contiguous ranges) and router rows aligned to the centres of their experts' clusters.
  // 0 = off.
  int num_clusters = 0;
  int num_threads = 0;  // 0 = hardware concurrency
};

// The config of a preset; errors name the preset and list the known ones.
StatusOr<ModelConfig> PresetConfig(const std::string& preset);
std::vector<std::string> PresetNames();

// Writes config.json and model.safetensors into options.out_dir (created if missing); the demo
// preset also gets Qwen3's tokenizer.json and tokenizer_config.json when the build embeds them
// (otherwise a warning is logged and the model serves token ids only).
Status GenerateRandomModel(const RandomModelOptions& options);

// The config.json text for a config (Qwen3-MoE keys).
std::string ConfigJson(const ModelConfig& config, int num_clusters);

}  // namespace moe::model
