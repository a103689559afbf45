#include "app/runtime_options.h"

#include <algorithm>
#include <charconv>
#include <fstream>

#include "app/backend_factory.h"
#include "core/logging.h"
#include "engine/null_step_runner.h"

namespace moe::app {

void RuntimeOptions::Register(CLI::App& cmd, bool model_required) {
  auto* model = cmd.add_option("--model", model_dir,
                               "Hugging Face model directory (config.json + safetensors)");
  if (model_required) model->required();
  cmd.add_option("--backend", backend, "auto | " + BackendNames())
      ->check(CLI::IsMember(BackendChoices()));
  cmd.add_option("--activations", activations, "activation and KV-cache dtype: f32 | bf16")
      ->check(CLI::IsMember({"f32", "bf16"}));
  cmd.add_option("--isa", isa, "CPU kernels: auto | avx512bf16 | avx2 | scalar")
      ->check(CLI::IsMember({"auto", "avx512bf16", "avx2", "scalar"}));
  cmd.add_option("--threads", threads, "compute threads (0 = physical cores)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_flag("--deterministic", deterministic,
               "CUDA: batch-invariant kernels (fixed reduction orders); the CPU always is");
  cmd.add_option("--grouped-gemm", grouped_gemm,
                 "CUDA MoE GEMM: cublas (baseline) | custom (tensor-core kernel)")
      ->check(CLI::IsMember({"cublas", "custom"}));
  cmd.add_option("--router-top-p", router_top_p,
                 "dynamic routing: each token keeps the fewest top experts whose router mass "
                 "reaches this (at most top-k; 0 = plain top-k)")
      ->check(CLI::Range(0.0, 1.0));
  cmd.add_option("--max-context", max_context,
                 "longest sequence, prompt + output (0 = min(model limit, 4096))")
      ->check(CLI::NonNegativeNumber);
}

void SchedulerOptions::Register(CLI::App& cmd) {
  cmd.add_option("--max-num-batched-tokens", max_num_batched_tokens, "token budget per step")
      ->check(CLI::PositiveNumber);
  cmd.add_option("--max-num-seqs", max_num_seqs, "running sequences")->check(CLI::PositiveNumber);
  cmd.add_option("--chunk-size", chunk_size, "prefill tokens per sequence per step (0 = budget)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--long-prefill-threshold", long_prefill_threshold,
                 "prompts longer than this are long prefills (0 = off)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--max-long-partial-prefills", max_long_partial_prefills,
                 "long prefills advancing per step")
      ->check(CLI::PositiveNumber);
  cmd.add_option("--max-waiting", max_waiting, "bounded waiting queue")->check(CLI::PositiveNumber);
  cmd.add_option("--policy", policy, "fcfs | priority")->check(CLI::IsMember({"fcfs", "priority"}));
  cmd.add_option("--block-size", block_size, "KV block size in tokens")->check(CLI::PositiveNumber);
  cmd.add_option("--kv-cache-bytes", kv_cache_bytes, "KV cache size (0 = --kv-cache-fraction)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--kv-cache-fraction", kv_cache_fraction,
                 "fraction of available memory for the KV cache")
      ->check(CLI::Range(0.0, 0.95));
  cmd.add_flag("--no-prefix-caching", no_prefix_caching, "disable the prefix cache");
  cmd.add_flag("--collect-routing", collect_routing,
               "record the experts each token is routed to (expert-load metrics and logs)");
}

StatusOr<std::vector<int32_t>> ParseIdList(const std::string& text, const char* flag) {
  std::vector<int32_t> ids;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = std::min(text.find(',', at), text.size());
    const std::string item = text.substr(at, comma - at);
    int32_t value = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() || value < 0) {
      return InvalidArgument(flag, ": '", item, "' is not a non-negative integer id");
    }
    ids.push_back(value);
    at = comma + 1;
  }
  if (ids.empty()) return InvalidArgument(flag, ": no ids given");
  return ids;
}

int64_t AvailableMemoryBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t value = 0;
  std::string unit;
  while (in >> key >> value >> unit) {
    if (key == "MemAvailable:") return value * 1024;
  }
  return 0;
}

StatusOr<std::unique_ptr<ModelSession>> OpenSession(const RuntimeOptions& options,
                                                    const SessionLimits& limits) {
  auto session = std::make_unique<ModelSession>();
  BackendChoice choice;
  choice.name = options.backend;
  choice.threads = options.threads;
  choice.isa = options.isa;
  choice.deterministic = options.deterministic;
  choice.grouped_gemm = options.grouped_gemm;
  MOE_ASSIGN_OR_RETURN(session->backend, CreateBackend(choice));
  MOE_ASSIGN_OR_RETURN(auto loaded, model::OpenModelDirectory(options.model_dir));
  const model::ModelConfig config = loaded->config;

  engine::ModelRuntimeConfig runtime;
  runtime.activation_dtype = options.activations == "f32" ? DType::kF32 : DType::kBF16;
  runtime.max_tokens = limits.max_tokens;
  runtime.max_seqs = limits.max_seqs;
  runtime.router_top_p = options.router_top_p;
  runtime.max_logit_rows = limits.max_logit_rows > 0 ? limits.max_logit_rows : limits.max_seqs;
  runtime.block_size = limits.block_size;
  runtime.max_context = options.max_context > 0 ? options.max_context
                                                : std::min(config.max_position_embeddings, 4096);
  if (runtime.max_context > config.max_position_embeddings) {
    return InvalidArgument("--max-context ", runtime.max_context,
                           " exceeds the model's max_position_embeddings ",
                           config.max_position_embeddings);
  }
  MOE_ASSIGN_OR_RETURN(session->model,
                       engine::Model::Create(*loaded, session->backend.get(), runtime));
  // The packed copies replace the mapped checkpoint.
  loaded.reset();

  engine::KvCacheConfig kv;
  kv.num_layers = config.num_layers;
  kv.block_size = runtime.block_size;
  kv.kv_heads = config.num_kv_heads;
  kv.head_dim = config.head_dim;
  kv.dtype = runtime.activation_dtype;
  const int blocks_per_seq = session->model->runtime().max_blocks_per_seq;
  int64_t bytes = limits.kv_cache_bytes;
  if (bytes == 0 && limits.kv_cache_fraction > 0) {
    bytes = static_cast<int64_t>(AvailableMemoryBytes() * limits.kv_cache_fraction);
    // No point in more than every sequence at full context, twice over (for the prefix cache).
    bytes = std::min<int64_t>(
        bytes, static_cast<int64_t>(kv.BytesPerBlock()) * blocks_per_seq * limits.max_seqs * 2);
  }
  kv.num_blocks = bytes > 0 ? static_cast<int>(bytes / kv.BytesPerBlock())
                            : blocks_per_seq * std::min(limits.max_seqs, 4);
  if (kv.num_blocks < 1) {
    return InvalidArgument("--kv-cache-bytes ", bytes, " holds no KV block (", kv.BytesPerBlock(),
                           " bytes each)");
  }
  MOE_ASSIGN_OR_RETURN(session->cache, engine::KvCache::Create(session->backend.get(), kv));
  MOE_LOG(INFO) << "loaded " << config << " on " << session->backend->Name() << ": "
                << session->model->packed_weight_bytes() / (1 << 20) << " MiB packed weights, "
                << session->cache->TotalBytes() / (1 << 20) << " MiB KV cache (" << kv.num_blocks
                << " blocks of " << kv.block_size << "), "
                << session->model->workspace_bytes() / (1 << 20) << " MiB workspace";
  return session;
}

EngineSession::~EngineSession() {
  if (loop) loop->Stop();
}

namespace {

// Fills the scheduler limits from the options, the context limit and the KV pool size.
scheduler::SchedulerConfig MakeSchedulerConfig(const SchedulerOptions& o, int max_context,
                                               int num_blocks) {
  scheduler::SchedulerConfig sc;
  sc.max_num_batched_tokens = o.max_num_batched_tokens;
  sc.max_num_seqs = o.max_num_seqs;
  sc.max_model_len = max_context;
  sc.chunk_size = o.chunk_size;
  sc.long_prefill_threshold = o.long_prefill_threshold;
  sc.max_long_partial_prefills = o.max_long_partial_prefills;
  sc.max_waiting = o.max_waiting;
  sc.policy = o.policy == "priority" ? scheduler::SchedulingPolicy::kPriority
                                     : scheduler::SchedulingPolicy::kFcfs;
  sc.block_size = o.block_size;
  sc.num_blocks = num_blocks;
  sc.enable_prefix_caching = !o.no_prefix_caching;
  return sc;
}

}  // namespace

StatusOr<std::unique_ptr<EngineSession>> OpenEngine(const RuntimeOptions& runtime,
                                                    const SchedulerOptions& o) {
  auto es = std::make_unique<EngineSession>();
  std::unique_ptr<engine::StepRunner> runner;
  if (runtime.backend == "null") {
    // Only the config is read: no weights, no KV memory.
    MOE_ASSIGN_OR_RETURN(es->config, model::ModelConfig::FromDirectory(runtime.model_dir));
    es->max_context = runtime.max_context > 0 ? runtime.max_context
                                              : std::min(es->config.max_position_embeddings, 4096);
    es->backend_name = "null";
    const int blocks_per_seq = (es->max_context + o.block_size - 1) / o.block_size;
    es->scheduler = MakeSchedulerConfig(o, es->max_context, blocks_per_seq * o.max_num_seqs);
    const int first_token =
        es->config.eos_token_ids.empty()
            ? 0
            : *std::max_element(es->config.eos_token_ids.begin(), es->config.eos_token_ids.end()) +
                  1;
    runner = std::make_unique<engine::NullStepRunner>(
        es->config.vocab_size, first_token < es->config.vocab_size ? first_token : 0);
  } else {
    SessionLimits limits;
    limits.max_tokens = o.max_num_batched_tokens;
    limits.max_seqs = o.max_num_seqs;
    limits.kv_cache_bytes = o.kv_cache_bytes;
    limits.kv_cache_fraction = o.kv_cache_fraction;
    limits.block_size = o.block_size;
    MOE_ASSIGN_OR_RETURN(es->session, OpenSession(runtime, limits));
    const engine::Model& model = *es->session->model;
    es->config = model.config();
    es->max_context = model.runtime().max_context;
    es->backend_name = es->session->backend->Name();
    es->scheduler =
        MakeSchedulerConfig(o, es->max_context, es->session->cache->config().num_blocks);
    engine::ExecutorOptions eo;
    eo.collect_routing = o.collect_routing;
    runner =
        std::make_unique<engine::Executor>(es->session->model.get(), es->session->cache.get(), eo);
  }
  MOE_RETURN_IF_ERROR(es->scheduler.Validate());
  engine::EngineConfig ec;
  ec.scheduler = es->scheduler;
  ec.vocab_size = es->config.vocab_size;
  ec.eos_token_ids = es->config.eos_token_ids;
  es->loop = std::make_unique<engine::EngineLoop>(ec, std::move(runner));
  es->loop->Start();
  MOE_LOG(INFO) << es->scheduler;
  return es;
}

}  // namespace moe::app
