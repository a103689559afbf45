// engine::Model over the optimized CPU backend against the reference backend on the `tiny`
// preset: logits within tolerance in F32 mode, identical greedy tokens, and model-level batch
// invariance (a sequence's logits alone = in a batch = in chunks, bit for bit).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "batching/token_batch.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "model/model_weights.h"
#include "tests/engine/cpu/cpu_test_util.h"
#include "tests/testing/test_models.h"

namespace moe::engine::cpu::testing {
namespace {

struct Session {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;
  std::unique_ptr<KvCache> cache;
};

Session Open(std::unique_ptr<Backend> backend, DType act) {
  Session s;
  s.backend = std::move(backend);
  auto loaded = model::OpenModelDirectory(moe::testing::PresetModelDir("tiny"));
  EXPECT_TRUE(loaded.ok()) << loaded.status().message();
  ModelRuntimeConfig runtime;
  runtime.activation_dtype = act;
  runtime.max_tokens = 128;
  runtime.max_seqs = 8;
  runtime.max_context = 256;
  auto m = Model::Create(**loaded, s.backend.get(), runtime);
  EXPECT_TRUE(m.ok()) << m.status().message();
  s.model = std::move(m).value();
  KvCacheConfig kv;
  kv.num_layers = s.model->config().num_layers;
  kv.block_size = s.model->runtime().block_size;
  kv.kv_heads = s.model->config().num_kv_heads;
  kv.head_dim = s.model->config().head_dim;
  kv.dtype = act;
  kv.num_blocks = 8 * s.model->runtime().max_blocks_per_seq;
  s.cache = std::move(KvCache::Create(s.backend.get(), kv)).value();
  return s;
}

std::vector<int32_t> Blocks(const Session& s, int seq) {
  const int per_seq = s.model->runtime().max_blocks_per_seq;
  std::vector<int32_t> blocks(per_seq);
  std::iota(blocks.begin(), blocks.end(), seq * per_seq);
  return blocks;
}

std::vector<int32_t> Prompt(int n, int salt) {
  std::vector<int32_t> ids(n);
  for (int i = 0; i < n; ++i) ids[i] = 3 + (i * 37 + salt * 101) % 500;
  return ids;
}

// Logits of every prompt position, one sequence in one step.
std::vector<float> PromptLogits(Session& s, const std::vector<int32_t>& prompt) {
  batching::TokenBatch batch;
  batch.block_size = s.model->runtime().block_size;
  EXPECT_TRUE(batch.AddSequence(prompt, 0, Blocks(s, 0), 0).ok());
  std::vector<float> logits(prompt.size() * s.model->config().vocab_size);
  EXPECT_TRUE(s.model->Forward(batch, *s.cache, logits.data()).ok());
  return logits;
}

std::vector<int32_t> Greedy(Session& s, const std::vector<int32_t>& prompt, int steps) {
  const int vocab = s.model->config().vocab_size;
  std::vector<float> logits(vocab);
  std::vector<int32_t> out, step = prompt;
  int pos = 0;
  for (int i = 0; i < steps; ++i) {
    batching::TokenBatch batch;
    batch.block_size = s.model->runtime().block_size;
    EXPECT_TRUE(batch.AddSequence(step, pos, Blocks(s, 0), static_cast<int>(step.size()) - 1).ok());
    EXPECT_TRUE(s.model->Forward(batch, *s.cache, logits.data()).ok());
    pos += static_cast<int>(step.size());
    const int32_t next =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(next);
    step = {next};
  }
  return out;
}

class CpuModelTest : public ::testing::TestWithParam<CpuIsa> {};

TEST_P(CpuModelTest, F32LogitsMatchReference) {
  Session ref = Open(std::make_unique<ReferenceBackend>(2), DType::kF32);
  Session cpu = Open(MakeCpuBackend(GetParam(), 2), DType::kF32);
  const auto prompt = Prompt(40, 1);
  const auto want = PromptLogits(ref, prompt);
  const auto got = PromptLogits(cpu, prompt);
  ASSERT_EQ(got.size(), want.size());
  const int vocab = ref.model->config().vocab_size;
  for (size_t p = 0; p < prompt.size(); ++p) {
    float max_abs = 0.f, max_diff = 0.f;
    for (int v = 0; v < vocab; ++v) {
      max_abs = std::max(max_abs, std::fabs(want[p * vocab + v]));
      max_diff = std::max(max_diff, std::fabs(got[p * vocab + v] - want[p * vocab + v]));
    }
    EXPECT_LE(max_diff, 1e-4f * max_abs) << "position " << p;
  }
  if (GetParam() == CpuIsa::kScalar) {
    EXPECT_EQ(got, want) << "scalar path is bit-exact";
  }
}

TEST_P(CpuModelTest, GreedyTokensMatchReference) {
  for (DType act : {DType::kF32, DType::kBF16}) {
    Session ref = Open(std::make_unique<ReferenceBackend>(2), act);
    Session cpu = Open(MakeCpuBackend(GetParam(), 2), act);
    const auto prompt = Prompt(12, 2);
    EXPECT_EQ(Greedy(cpu, prompt, 12), Greedy(ref, prompt, 12)) << DTypeName(act);
  }
}

TEST_P(CpuModelTest, BatchAndChunkInvariantLogits) {
  Session cpu = Open(MakeCpuBackend(GetParam(), 2), DType::kBF16);
  const int vocab = cpu.model->config().vocab_size;
  const auto prompt = Prompt(30, 3);
  const auto alone = PromptLogits(cpu, prompt);
  // The same prompt as sequence 2 of 4 (others: prompts of other lengths), in one step.
  {
    batching::TokenBatch batch;
    batch.block_size = cpu.model->runtime().block_size;
    int target_first = 0;
    for (int s = 0; s < 4; ++s) {
      const auto p = s == 2 ? prompt : Prompt(5 + 11 * s, 10 + s);
      if (s == 2) target_first = batch.num_tokens();
      ASSERT_TRUE(
          batch.AddSequence(p, 0, Blocks(cpu, s), s == 2 ? 0 : static_cast<int>(p.size())).ok());
    }
    std::vector<float> logits(prompt.size() * vocab);
    ASSERT_TRUE(cpu.model->Forward(batch, *cpu.cache, logits.data()).ok());
    (void)target_first;
    EXPECT_EQ(logits, alone) << "batched prompt differs from the prompt alone";
  }
  // The same prompt in chunks of 8, 1 and 21 positions.
  {
    std::vector<float> chunked;
    int pos = 0;
    for (int n : {8, 1, 21}) {
      batching::TokenBatch batch;
      batch.block_size = cpu.model->runtime().block_size;
      const std::vector<int32_t> part(prompt.begin() + pos, prompt.begin() + pos + n);
      ASSERT_TRUE(batch.AddSequence(part, pos, Blocks(cpu, 5), 0).ok());
      const auto other = Prompt(3, 7);
      ASSERT_TRUE(batch.AddSequence(other, 0, Blocks(cpu, 6), 3).ok());
      std::vector<float> logits(n * vocab);
      ASSERT_TRUE(cpu.model->Forward(batch, *cpu.cache, logits.data()).ok());
      chunked.insert(chunked.end(), logits.begin(), logits.end());
      pos += n;
    }
    EXPECT_EQ(chunked, alone) << "chunked prefill differs from the one-step prefill";
  }
}

TEST_P(CpuModelTest, ThreadCountInvariantLogits) {
  Session one = Open(MakeCpuBackend(GetParam(), 1), DType::kBF16);
  Session two = Open(MakeCpuBackend(GetParam(), 2), DType::kBF16);
  Session three = Open(MakeCpuBackend(GetParam(), 3), DType::kBF16);
  const auto prompt = Prompt(45, 4);
  const auto want = PromptLogits(one, prompt);
  EXPECT_EQ(PromptLogits(two, prompt), want);
  EXPECT_EQ(PromptLogits(three, prompt), want);
}

INSTANTIATE_TEST_SUITE_P(Isas, CpuModelTest, ::testing::ValuesIn(SupportedIsas()),
                         [](const auto& info) { return IsaParamName(info.param); });

}  // namespace
}  // namespace moe::engine::cpu::testing
