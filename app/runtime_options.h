// Flags shared by every subcommand that runs a model (backend, threads, activation dtype), and
// the code that turns them into a loaded Model with a KV cache.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "engine/backend.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "model/model_weights.h"

namespace moe::app {

struct RuntimeOptions {
  std::string model_dir;
  std::string backend = "auto";      // auto | reference
  std::string activations = "bf16";  // f32 | bf16
  int threads = 0;                   // 0 = hardware concurrency
  int max_tokens = 512;
  int max_seqs = 64;
  int max_context = 0;  // 0 = min(model max_position_embeddings, 4096)
  int kv_blocks = 0;    // 0 = enough for max_seqs sequences of max_context

  void Register(CLI::App& cmd);
};

// Everything needed to run forward passes; members are destroyed in reverse order.
struct ModelSession {
  std::unique_ptr<engine::Backend> backend;
  std::unique_ptr<model::LoadedModel> loaded;  // released after packing
  std::unique_ptr<engine::Model> model;
  std::unique_ptr<engine::KvCache> cache;
};

StatusOr<std::unique_ptr<ModelSession>> OpenSession(const RuntimeOptions& options);

// Parses "1,2,3" into ids; errors name the flag.
StatusOr<std::vector<int32_t>> ParseIdList(const std::string& text, const char* flag);

}  // namespace moe::app
