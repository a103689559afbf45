#include "app/runtime_options.h"

#include <algorithm>
#include <charconv>

#include "core/logging.h"
#include "core/thread_pool.h"
#include "engine/cpu/reference_backend.h"

namespace moe::app {

void RuntimeOptions::Register(CLI::App& cmd) {
  cmd.add_option("--model", model_dir, "Hugging Face model directory (config.json + safetensors)")
      ->required();
  cmd.add_option("--backend", backend, "auto | reference")
      ->check(CLI::IsMember({"auto", "reference"}));
  cmd.add_option("--activations", activations, "activation and KV-cache dtype: f32 | bf16")
      ->check(CLI::IsMember({"f32", "bf16"}));
  cmd.add_option("--threads", threads, "compute threads (0 = all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--max-context", max_context, "longest sequence (0 = min(model limit, 4096))")
      ->check(CLI::NonNegativeNumber);
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

StatusOr<std::unique_ptr<ModelSession>> OpenSession(const RuntimeOptions& options) {
  auto session = std::make_unique<ModelSession>();
  const int threads = options.threads > 0 ? options.threads : ThreadPool::HardwareConcurrency();
  session->backend = std::make_unique<engine::cpu::ReferenceBackend>(threads);
  MOE_ASSIGN_OR_RETURN(session->loaded, model::OpenModelDirectory(options.model_dir));
  const model::ModelConfig& config = session->loaded->config;

  engine::ModelRuntimeConfig runtime;
  runtime.activation_dtype = options.activations == "f32" ? DType::kF32 : DType::kBF16;
  runtime.max_tokens = options.max_tokens;
  runtime.max_seqs = options.max_seqs;
  runtime.max_context = options.max_context > 0
                            ? options.max_context
                            : std::min(config.max_position_embeddings, 4096);
  MOE_ASSIGN_OR_RETURN(session->model,
                       engine::Model::Create(*session->loaded, session->backend.get(), runtime));

  engine::KvCacheConfig kv;
  kv.num_layers = config.num_layers;
  kv.block_size = session->model->runtime().block_size;
  kv.kv_heads = config.num_kv_heads;
  kv.head_dim = config.head_dim;
  kv.dtype = runtime.activation_dtype;
  kv.num_blocks = options.kv_blocks > 0
                      ? options.kv_blocks
                      : session->model->runtime().max_blocks_per_seq * std::min(options.max_seqs, 4);
  MOE_ASSIGN_OR_RETURN(session->cache, engine::KvCache::Create(session->backend.get(), kv));
  MOE_LOG(INFO) << "loaded " << config << " on " << session->backend->Name() << " ("
                << session->model->packed_weight_bytes() / (1 << 20) << " MiB packed weights, "
                << session->cache->TotalBytes() / (1 << 20) << " MiB KV cache)";
  // The packed copies replace the mapped checkpoint.
  session->loaded.reset();
  return session;
}

}  // namespace moe::app
