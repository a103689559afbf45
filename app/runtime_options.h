// Flags shared by every subcommand that runs a model, and the code that turns them into a loaded
// Model with a KV cache (ModelSession) or a running engine (EngineSession).
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "engine/backend.h"
#include "engine/engine_loop.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "model/model_weights.h"
#include "scheduler/scheduler_config.h"

namespace moe::app {

// Model and backend flags.
struct RuntimeOptions {
  std::string model_dir;
  std::string backend = "auto";         // auto | cpu | reference | null (zero-cost, no model)
  std::string activations = "bf16";     // f32 | bf16
  std::string isa = "auto";             // CPU backend kernels: auto | avx512bf16 | avx2 | scalar
  int threads = 0;                      // 0 = physical cores
  bool deterministic = false;           // CUDA: batch-invariant kernels (the CPU always is)
  std::string grouped_gemm = "cublas";  // CUDA MoE GEMM: cublas | custom
  int max_context = 0;                  // 0 = min(model max_position_embeddings, 4096)
  float router_top_p = 0.f;  // dynamic routing: experts per token up to this mass (0 = off)

  void Register(CLI::App& cmd, bool model_required = true);
};

// Continuous-batching flags (vLLM's names where they exist).
struct SchedulerOptions {
  int max_num_batched_tokens = 512;
  int max_num_seqs = 64;
  int chunk_size = 0;
  int long_prefill_threshold = 0;
  int max_long_partial_prefills = 1;
  int max_waiting = 1024;
  std::string policy = "fcfs";  // fcfs | priority
  int block_size = 16;
  int64_t kv_cache_bytes = 0;       // 0 = kv_cache_fraction of available memory
  double kv_cache_fraction = 0.25;  // of MemAvailable after loading weights
  bool no_prefix_caching = false;
  bool collect_routing = false;

  void Register(CLI::App& cmd);
};

// Step limits of a ModelSession (the scheduler's limits when an engine runs on it).
struct SessionLimits {
  int max_tokens = 512;  // tokens per forward
  int max_seqs = 64;
  int max_logit_rows = 0;        // rows of logits per forward (0 = max_seqs: one sample each)
  int64_t kv_cache_bytes = 0;    // 0 = one max_context sequence per max_seqs (capped at 4)
  double kv_cache_fraction = 0;  // used when kv_cache_bytes == 0 and > 0
  int block_size = 16;
};

// Everything needed to run forward passes; members are destroyed in reverse order.
struct ModelSession {
  std::unique_ptr<engine::Backend> backend;
  std::unique_ptr<engine::Model> model;
  std::unique_ptr<engine::KvCache> cache;
};

StatusOr<std::unique_ptr<ModelSession>> OpenSession(const RuntimeOptions& options,
                                                    const SessionLimits& limits);

// A model plus a started engine loop. With `--backend null` there is no model session: the
// engine runs the zero-cost NullStepRunner over the model's config.
struct EngineSession {
  std::unique_ptr<ModelSession> session;  // null for the null backend
  std::unique_ptr<engine::EngineLoop> loop;
  scheduler::SchedulerConfig scheduler;
  model::ModelConfig config;
  int max_context = 0;
  std::string backend_name;
  ~EngineSession();  // stops the loop before the model goes
};

StatusOr<std::unique_ptr<EngineSession>> OpenEngine(const RuntimeOptions& runtime,
                                                    const SchedulerOptions& options);

// Parses "1,2,3" into ids; errors name the flag.
StatusOr<std::vector<int32_t>> ParseIdList(const std::string& text, const char* flag);

// Bytes the kernel reports as available (MemAvailable), or 0 when unknown.
int64_t AvailableMemoryBytes();

}  // namespace moe::app
