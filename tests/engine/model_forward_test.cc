// Forward-pass invariants of engine::Model on the reference backend that must hold bit for bit
// (DESIGN.md §4): how a sequence is split into steps, which other sequences share the step, and
// where its KV blocks live do not change its logits.
#include <algorithm>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

#include "engine/cpu/reference_backend.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "model/model_weights.h"
#include "tests/testing/test_models.h"

namespace moe::engine {
namespace {

struct Harness {
  std::unique_ptr<cpu::ReferenceBackend> backend;
  std::unique_ptr<Model> model;
  std::unique_ptr<KvCache> cache;
  int vocab = 0;

  Harness(DType act, int threads = 2, float top_p = 0.f) {
    backend = std::make_unique<cpu::ReferenceBackend>(threads);
    auto loaded = model::OpenModelDirectory(testing::PresetModelDir("tiny", 7));
    MOE_CHECK(loaded.ok()) << loaded.status().message();
    ModelRuntimeConfig rt;
    rt.activation_dtype = act;
    rt.max_tokens = 128;
    rt.max_seqs = 8;
    rt.max_context = 256;
    rt.router_top_p = top_p;
    auto m = Model::Create(**loaded, backend.get(), rt);
    MOE_CHECK(m.ok()) << m.status().message();
    model = std::move(*m);
    KvCacheConfig kv;
    kv.num_layers = model->config().num_layers;
    kv.num_blocks = 64;
    kv.block_size = rt.block_size;
    kv.kv_heads = model->config().num_kv_heads;
    kv.head_dim = model->config().head_dim;
    kv.dtype = act;
    auto c = KvCache::Create(backend.get(), kv);
    MOE_CHECK(c.ok());
    cache = std::move(*c);
    vocab = model->config().vocab_size;
  }
};

std::vector<int32_t> Prompt(int n, int seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids) id = static_cast<int32_t>(rng() % 512);
  return ids;
}

std::vector<int32_t> Blocks(int first, int count) {
  std::vector<int32_t> b(count);
  std::iota(b.begin(), b.end(), first);
  return b;
}

// Runs `tokens` of one sequence in chunks of `chunk` tokens; returns logits of every position.
std::vector<float> RunChunked(Harness& h, const std::vector<int32_t>& tokens, int chunk,
                              const std::vector<int32_t>& blocks) {
  std::vector<float> all;
  for (size_t start = 0; start < tokens.size(); start += chunk) {
    const size_t n = std::min<size_t>(chunk, tokens.size() - start);
    batching::TokenBatch batch;
    std::span<const int32_t> part(tokens.data() + start, n);
    EXPECT_TRUE(batch.AddSequence(part, static_cast<int32_t>(start), blocks, 0).ok());
    std::vector<float> logits(n * h.vocab);
    const Status s = h.model->Forward(batch, *h.cache, logits.data());
    EXPECT_TRUE(s.ok()) << s.message();
    all.insert(all.end(), logits.begin(), logits.end());
  }
  return all;
}

class ForwardInvariance : public ::testing::TestWithParam<DType> {};

TEST_P(ForwardInvariance, ChunkingDoesNotChangeLogits) {
  Harness h(GetParam());
  const auto tokens = Prompt(37, 1);
  const auto blocks = Blocks(0, 3);
  const std::vector<float> whole = RunChunked(h, tokens, 37, blocks);
  for (int chunk : {1, 5, 16, 17}) {
    const std::vector<float> parts = RunChunked(h, tokens, chunk, blocks);
    ASSERT_EQ(parts.size(), whole.size());
    EXPECT_EQ(0, std::memcmp(parts.data(), whole.data(), whole.size() * 4)) << "chunk " << chunk;
  }
}

TEST_P(ForwardInvariance, BatchCompositionDoesNotChangeLogits) {
  Harness h(GetParam());
  const auto a = Prompt(20, 2);
  const auto b = Prompt(9, 3);
  const auto alone_a = RunChunked(h, a, 20, Blocks(0, 2));
  const auto alone_b = RunChunked(h, b, 9, Blocks(2, 1));

  // Both in one step, b first, in other blocks.
  batching::TokenBatch batch;
  const auto blocks_a = std::vector<int32_t>{9, 4};
  const auto blocks_b = std::vector<int32_t>{7};
  ASSERT_TRUE(batch.AddSequence(b, 0, blocks_b, 0).ok());
  ASSERT_TRUE(batch.AddSequence(a, 0, blocks_a, 0).ok());
  std::vector<float> logits(29 * h.vocab);
  ASSERT_TRUE(h.model->Forward(batch, *h.cache, logits.data()).ok());
  EXPECT_EQ(0, std::memcmp(logits.data(), alone_b.data(), alone_b.size() * 4));
  EXPECT_EQ(0, std::memcmp(logits.data() + alone_b.size(), alone_a.data(), alone_a.size() * 4));
}

TEST_P(ForwardInvariance, DecodeStepsMatchPrefillAndThreadCount) {
  Harness two(GetParam(), 2);
  Harness one(GetParam(), 1);
  const auto tokens = Prompt(24, 4);
  const auto prefill = RunChunked(two, tokens, 24, Blocks(0, 2));
  // Prefix of 10 then one token per step, with a mixed batch each step: another sequence's
  // prefill chunk rides along.
  const auto other = Prompt(30, 5);
  std::vector<float> stepped;
  {
    batching::TokenBatch batch;
    ASSERT_TRUE(batch.AddSequence(std::span(tokens.data(), 10), 0, Blocks(0, 2), 0).ok());
    std::vector<float> logits(10 * one.vocab);
    ASSERT_TRUE(one.model->Forward(batch, *one.cache, logits.data()).ok());
    stepped = logits;
  }
  for (int pos = 10; pos < 24; ++pos) {
    batching::TokenBatch batch;
    const int other_start = (pos - 10) * 2;
    ASSERT_TRUE(
        batch.AddSequence(std::span(other.data() + other_start, 2), other_start, Blocks(10, 2), 2)
            .ok());
    ASSERT_TRUE(batch.AddSequence(std::span(tokens.data() + pos, 1), pos, Blocks(0, 2), 0).ok());
    std::vector<float> logits(one.vocab);
    ASSERT_TRUE(one.model->Forward(batch, *one.cache, logits.data()).ok());
    stepped.insert(stepped.end(), logits.begin(), logits.end());
  }
  ASSERT_EQ(stepped.size(), prefill.size());
  EXPECT_EQ(0, std::memcmp(stepped.data(), prefill.data(), prefill.size() * 4));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ForwardInvariance, ::testing::Values(DType::kF32, DType::kBF16),
                         [](const auto& info) {
                           return info.param == DType::kF32 ? std::string("F32")
                                                            : std::string("BF16");
                         });

TEST(ModelForward, LogitsOnlyForRequestedRowsAndTheyMatch) {
  Harness h(DType::kBF16);
  const auto tokens = Prompt(12, 6);
  const auto all = RunChunked(h, tokens, 12, Blocks(0, 1));
  batching::TokenBatch batch;
  ASSERT_TRUE(batch.AddSequence(tokens, 0, Blocks(0, 1), 11).ok());
  ASSERT_EQ(batch.logits_indices, std::vector<int32_t>{11});
  std::vector<float> last(h.vocab);
  ASSERT_TRUE(h.model->Forward(batch, *h.cache, last.data()).ok());
  EXPECT_EQ(0, std::memcmp(last.data(), all.data() + 11 * h.vocab, h.vocab * 4));
}

TEST(ModelForward, Bf16StaysCloseToF32) {
  Harness f32(DType::kF32);
  Harness bf16(DType::kBF16);
  const auto tokens = Prompt(16, 8);
  const auto a = RunChunked(f32, tokens, 16, Blocks(0, 1));
  const auto b = RunChunked(bf16, tokens, 16, Blocks(0, 1));
  float max_abs = 0, max_err = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_abs = std::max(max_abs, std::abs(a[i]));
    max_err = std::max(max_err, std::abs(a[i] - b[i]));
  }
  EXPECT_GT(max_abs, 0.f);
  EXPECT_LT(max_err / max_abs, 0.1f);
  EXPECT_GT(max_err, 0.f) << "bf16 activations should round somewhere";
}

TEST(ModelForward, DynamicRoutingRunsAndDiffersFromTopK) {
  Harness topk(DType::kF32);
  // Router probabilities of the random model are near uniform (1/8), so top_p = 0.1 keeps one
  // expert per token where top-k keeps two.
  Harness dynamic(DType::kF32, 2, 0.1f);
  const auto tokens = Prompt(8, 9);
  const auto a = RunChunked(topk, tokens, 8, Blocks(0, 1));
  const auto b = RunChunked(dynamic, tokens, 8, Blocks(0, 1));
  EXPECT_NE(0, std::memcmp(a.data(), b.data(), a.size() * 4));
  for (float v : b) ASSERT_TRUE(std::isfinite(v));
  batching::TokenBatch batch;
  ASSERT_TRUE(batch.AddSequence(tokens, 0, Blocks(1, 1), 7).ok());
  std::vector<float> logits(dynamic.vocab);
  RoutingTrace trace;
  ASSERT_TRUE(dynamic.model->Forward(batch, *dynamic.cache, logits.data(), &trace).ok());
  const int unused =
      static_cast<int>(std::count(trace.expert_ids.begin(), trace.expert_ids.end(), -1));
  EXPECT_GT(unused, 0);
}

TEST(ModelForward, RoutingTraceHasEveryMoeLayer) {
  Harness h(DType::kBF16);
  const auto tokens = Prompt(5, 10);
  batching::TokenBatch batch;
  ASSERT_TRUE(batch.AddSequence(tokens, 0, Blocks(0, 1), 4).ok());
  std::vector<float> logits(h.vocab);
  RoutingTrace trace;
  ASSERT_TRUE(h.model->Forward(batch, *h.cache, logits.data(), &trace).ok());
  EXPECT_EQ(trace.num_tokens, 5);
  EXPECT_EQ(trace.top_k, 2);
  EXPECT_EQ(trace.moe_layers, (std::vector<int>{0, 1, 2, 3}));
  ASSERT_EQ(trace.expert_ids.size(), 4u * 5 * 2);
  for (size_t i = 0; i < trace.expert_ids.size(); i += 2) {
    EXPECT_GE(trace.expert_ids[i], 0);
    EXPECT_LT(trace.expert_ids[i], 8);
    EXPECT_NE(trace.expert_ids[i], trace.expert_ids[i + 1]);
  }
}

TEST(ModelForward, RejectsBadBatches) {
  Harness h(DType::kBF16);
  batching::TokenBatch batch;
  const std::vector<int32_t> bad = {1, 600};
  ASSERT_TRUE(batch.AddSequence(bad, 0, Blocks(0, 1), 1).ok());
  std::vector<float> logits(h.vocab);
  const Status s = h.model->Forward(batch, *h.cache, logits.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(s.message()).find("600"), std::string::npos) << s.message();

  batching::TokenBatch too_long;
  const auto many = Prompt(129, 11);
  ASSERT_TRUE(too_long.AddSequence(many, 0, Blocks(0, 9), 128).ok());
  EXPECT_EQ(h.model->Forward(too_long, *h.cache, logits.data()).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moe::engine
