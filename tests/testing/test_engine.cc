#include "tests/testing/test_engine.h"

#include <utility>

#include "core/check.h"
#include "model/model_weights.h"
#include "tests/testing/test_models.h"

namespace moe::testing {

void CollectingSink::OnOutput(engine::RequestOutput output) {
  std::lock_guard<std::mutex> lock(mu_);
  for (int32_t t : output.new_tokens) streamed_.push_back(t);
  if (output.finished) {
    final_ = std::move(output);
    done_ = true;
    cv_.notify_all();
  }
}

engine::RequestOutput CollectingSink::Wait() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return done_; });
  return final_;
}

std::vector<int32_t> CollectingSink::streamed() {
  std::lock_guard<std::mutex> lock(mu_);
  return streamed_;
}

TestEngine::TestEngine(std::unique_ptr<engine::Backend> b, const scheduler::SchedulerConfig& sc,
                       const TestEngineOptions& options)
    : backend(std::move(b)) {
  auto loaded = model::OpenModelDirectory(PresetModelDir(options.preset, options.model_seed));
  MOE_CHECK(loaded.ok()) << loaded.status().message();
  engine::ModelRuntimeConfig rt;
  rt.activation_dtype = options.activations;
  rt.max_tokens =
      options.max_tokens_per_step > 0 ? options.max_tokens_per_step : sc.max_num_batched_tokens;
  rt.max_seqs = sc.max_num_seqs;
  rt.max_context = sc.max_model_len;
  rt.block_size = sc.block_size;
  auto m = engine::Model::Create(**loaded, backend.get(), rt);
  MOE_CHECK(m.ok()) << m.status().message();
  model = std::move(*m);
  engine::KvCacheConfig kv;
  kv.num_layers = model->config().num_layers;
  kv.num_blocks = sc.num_blocks;
  kv.block_size = sc.block_size;
  kv.kv_heads = model->config().num_kv_heads;
  kv.head_dim = model->config().head_dim;
  kv.dtype = options.activations;
  auto c = engine::KvCache::Create(backend.get(), kv);
  MOE_CHECK(c.ok()) << c.status().message();
  cache = std::move(*c);
  engine::EngineConfig ec;
  ec.scheduler = sc;
  ec.vocab_size = model->config().vocab_size;
  ec.eos_token_ids = model->config().eos_token_ids;
  ec.seed = options.engine_seed;
  loop = std::make_unique<engine::EngineLoop>(
      ec, std::make_unique<engine::Executor>(model.get(), cache.get(), engine::ExecutorOptions{}));
  loop->Start();
}

TestEngine::~TestEngine() { loop->Stop(); }

}  // namespace moe::testing
