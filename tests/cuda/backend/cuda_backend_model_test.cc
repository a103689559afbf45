// engine::Model on CudaBackend against engine::Model on ReferenceBackend, on the `tiny` preset:
// logits within tolerance (F32 and BF16 activations, every grouped GEMM path), identical greedy
// tokens in F32 mode, and --deterministic batch invariance: a sequence's logits are bit-identical
// alone, in chunks, and in a batch with other sequences in other KV blocks. Label `gpu`; skips
// without a device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "batching/token_batch.h"
#include "cuda/backend/cuda_backend.h"
#include "engine/cpu/reference_backend.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "model/model_weights.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/testing/test_models.h"

namespace moe::cuda::testing {
namespace {

using engine::Backend;
using engine::KvCache;
using engine::Model;

struct Session {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;
  std::unique_ptr<KvCache> cache;
  int vocab = 0;

  Session(std::unique_ptr<Backend> b, DType act) : backend(std::move(b)) {
    auto loaded = model::OpenModelDirectory(moe::testing::PresetModelDir("tiny", 7));
    MOE_CHECK(loaded.ok()) << loaded.status().message();
    engine::ModelRuntimeConfig runtime;
    runtime.activation_dtype = act;
    runtime.max_tokens = 128;
    runtime.max_seqs = 8;
    runtime.max_context = 256;
    auto m = Model::Create(**loaded, backend.get(), runtime);
    MOE_CHECK(m.ok()) << m.status().message();
    model = std::move(m).value();
    engine::KvCacheConfig kv;
    kv.num_layers = model->config().num_layers;
    kv.num_blocks = 64;
    kv.block_size = runtime.block_size;
    kv.kv_heads = model->config().num_kv_heads;
    kv.head_dim = model->config().head_dim;
    kv.dtype = act;
    auto c = KvCache::Create(backend.get(), kv);
    MOE_CHECK(c.ok()) << c.status().message();
    cache = std::move(c).value();
    vocab = model->config().vocab_size;
  }
};

std::unique_ptr<Backend> Reference() {
  return std::make_unique<engine::cpu::ReferenceBackend>(
      static_cast<int>(std::max(2u, std::thread::hardware_concurrency())));
}

std::unique_ptr<Backend> Cuda(bool deterministic,
                              GroupedGemmKernel kernel = GroupedGemmKernel::kCublas) {
  CudaBackendOptions options;
  options.deterministic = deterministic;
  options.grouped_gemm = kernel;
  auto backend = CudaBackend::Create(options);
  MOE_CHECK(backend.ok()) << backend.status().message();
  return std::move(backend).value();
}

std::vector<int32_t> Prompt(int n, int salt) {
  std::vector<int32_t> ids(n);
  for (int i = 0; i < n; ++i) ids[i] = 3 + (i * 37 + salt * 101) % 500;
  return ids;
}

std::vector<int32_t> Blocks(int first, int count) {
  std::vector<int32_t> b(count);
  std::iota(b.begin(), b.end(), first);
  return b;
}

// Logits of every position of `tokens`, fed to one sequence in chunks of `chunk` tokens.
std::vector<float> RunChunked(Session& s, const std::vector<int32_t>& tokens, int chunk,
                              const std::vector<int32_t>& blocks) {
  std::vector<float> all;
  for (size_t start = 0; start < tokens.size(); start += chunk) {
    const size_t n = std::min<size_t>(chunk, tokens.size() - start);
    batching::TokenBatch batch;
    EXPECT_TRUE(batch
                    .AddSequence(std::span(tokens.data() + start, n), static_cast<int32_t>(start),
                                 blocks, 0)
                    .ok());
    std::vector<float> logits(n * s.vocab);
    const Status st = s.model->Forward(batch, *s.cache, logits.data());
    EXPECT_TRUE(st.ok()) << st.message();
    all.insert(all.end(), logits.begin(), logits.end());
  }
  return all;
}

// Per row of `vocab` logits: max |a - b| / max |b|, sorted ascending.
std::vector<double> RowErrors(const std::vector<float>& a, const std::vector<float>& b, int vocab) {
  std::vector<double> errors;
  for (size_t row = 0; row * vocab < b.size(); ++row) {
    double max_abs = 0, max_err = 0;
    for (int i = 0; i < vocab; ++i) {
      const size_t j = row * vocab + i;
      max_abs = std::max(max_abs, std::fabs(static_cast<double>(b[j])));
      max_err = std::max(max_err, std::fabs(static_cast<double>(a[j]) - b[j]));
    }
    errors.push_back(max_err / std::max(max_abs, 1e-30));
  }
  std::sort(errors.begin(), errors.end());
  return errors;
}

double WorstRowError(const std::vector<float>& a, const std::vector<float>& b, int vocab) {
  const std::vector<double> errors = RowErrors(a, b, vocab);
  return errors.empty() ? 0.0 : errors.back();
}

int Argmax(const float* v, int n) { return static_cast<int>(std::max_element(v, v + n) - v); }

// Prefill then single-token decode steps, feeding back each session's own argmax.
std::vector<int32_t> Greedy(Session& s, const std::vector<int32_t>& prompt, int steps,
                            std::vector<float>* last_logits_of_each_step) {
  const std::vector<int32_t> blocks = Blocks(0, 16);
  std::vector<float> logits(s.vocab);
  std::vector<int32_t> out;
  std::vector<int32_t> step = prompt;
  int pos = 0;
  for (int i = 0; i < steps; ++i) {
    batching::TokenBatch batch;
    EXPECT_TRUE(batch.AddSequence(step, pos, blocks, static_cast<int>(step.size()) - 1).ok());
    const Status st = s.model->Forward(batch, *s.cache, logits.data());
    EXPECT_TRUE(st.ok()) << st.message();
    if (last_logits_of_each_step != nullptr) {
      last_logits_of_each_step->insert(last_logits_of_each_step->end(), logits.begin(),
                                       logits.end());
    }
    pos += static_cast<int>(step.size());
    const int32_t next = Argmax(logits.data(), s.vocab);
    out.push_back(next);
    step = {next};
  }
  return out;
}

TEST(CudaModel, F32LogitsMatchReference) {
  MOE_SKIP_IF_NO_GPU();
  for (bool deterministic : {false, true}) {
    SCOPED_TRACE(deterministic ? "deterministic" : "default");
    Session ref(Reference(), DType::kF32);
    Session gpu(Cuda(deterministic), DType::kF32);
    const auto tokens = Prompt(40, 1);
    const auto want = RunChunked(ref, tokens, 40, Blocks(0, 3));
    const auto got = RunChunked(gpu, tokens, 40, Blocks(0, 3));
    ASSERT_EQ(got.size(), want.size());
    const double err = WorstRowError(got, want, ref.vocab);
    std::printf("F32 %s: worst row max|diff|/max|ref| = %.3g\n",
                deterministic ? "deterministic" : "default", err);
    EXPECT_LT(err, 1e-3);
  }
}

TEST(CudaModel, Bf16LogitsNearReferenceOnEveryGemmPath) {
  MOE_SKIP_IF_NO_GPU();
  Session ref(Reference(), DType::kBF16);
  const auto tokens = Prompt(40, 2);
  const auto want = RunChunked(ref, tokens, 40, Blocks(0, 3));
  struct Config {
    const char* name;
    bool deterministic;
    GroupedGemmKernel kernel;
  };
  for (const Config c : {Config{"cublas", false, GroupedGemmKernel::kCublas},
                         Config{"custom", false, GroupedGemmKernel::kCustom},
                         Config{"deterministic", true, GroupedGemmKernel::kCublas},
                         Config{"deterministic+custom", true, GroupedGemmKernel::kCustom}}) {
    SCOPED_TRACE(c.name);
    Session gpu(Cuda(c.deterministic, c.kernel), DType::kBF16);
    const auto got = RunChunked(gpu, tokens, 40, Blocks(0, 3));
    ASSERT_EQ(got.size(), want.size());
    const std::vector<double> errors = RowErrors(got, want, ref.vocab);
    const double p90 = errors[errors.size() * 9 / 10];
    std::printf("BF16 %s: row max|diff|/max|ref|: median %.3g, p90 %.3g, worst %.3g\n", c.name,
                errors[errors.size() / 2], p90, errors.back());
    // bf16 activations round at every op; both sides round at the same places but sum in other
    // orders, so a rounding can land one ulp apart and grow through the layers, and a router
    // near-tie can then pick another expert for a token (the CPU's bf16-vs-f32 bound is 0.1).
    EXPECT_LT(errors[errors.size() / 2], 0.02);
    EXPECT_LT(p90, 0.05);
  }
}

TEST(CudaModel, F32GreedyTokensMatchReference) {
  MOE_SKIP_IF_NO_GPU();
  for (int salt : {3, 4}) {
    Session ref(Reference(), DType::kF32);
    Session gpu(Cuda(false), DType::kF32);
    std::vector<float> ref_logits;
    const auto prompt = Prompt(20, salt);
    const auto want = Greedy(ref, prompt, 24, &ref_logits);
    const auto got = Greedy(gpu, prompt, 24, nullptr);
    // On a mismatch, report the reference's top-2 margin at that step (a near tie explains it).
    for (size_t i = 0; i < want.size(); ++i) {
      if (got[i] == want[i]) continue;
      std::vector<float> row(ref_logits.begin() + i * ref.vocab,
                             ref_logits.begin() + (i + 1) * ref.vocab);
      std::partial_sort(row.begin(), row.begin() + 2, row.end(), std::greater<float>());
      ADD_FAILURE() << "prompt " << salt << " step " << i << ": gpu " << got[i] << " vs reference "
                    << want[i] << " (reference top-2 margin " << row[0] - row[1] << ")";
      break;
    }
  }
}

class DeterministicModel : public ::testing::TestWithParam<std::tuple<DType, GroupedGemmKernel>> {};

TEST_P(DeterministicModel, ChunkingDoesNotChangeLogits) {
  MOE_SKIP_IF_NO_GPU();
  const auto [dtype, kernel] = GetParam();
  Session s(Cuda(true, kernel), dtype);
  const auto tokens = Prompt(37, 1);
  const auto blocks = Blocks(0, 3);
  const std::vector<float> whole = RunChunked(s, tokens, 37, blocks);
  for (int chunk : {1, 5, 16, 17}) {
    const std::vector<float> parts = RunChunked(s, tokens, chunk, blocks);
    ASSERT_EQ(parts.size(), whole.size());
    EXPECT_EQ(0, std::memcmp(parts.data(), whole.data(), whole.size() * 4)) << "chunk " << chunk;
  }
}

TEST_P(DeterministicModel, BatchCompositionDoesNotChangeLogits) {
  MOE_SKIP_IF_NO_GPU();
  const auto [dtype, kernel] = GetParam();
  Session s(Cuda(true, kernel), dtype);
  const auto a = Prompt(20, 2);
  const auto b = Prompt(9, 3);
  const auto alone_a = RunChunked(s, a, 20, Blocks(0, 2));
  const auto alone_b = RunChunked(s, b, 9, Blocks(2, 1));
  // Both in one step, b first, in other (non-contiguous) blocks, with a third sequence.
  batching::TokenBatch batch;
  const auto c = Prompt(50, 4);
  ASSERT_TRUE(batch.AddSequence(b, 0, std::vector<int32_t>{7}, 0).ok());
  ASSERT_TRUE(batch.AddSequence(c, 0, std::vector<int32_t>{20, 11, 30, 12}, 0).ok());
  ASSERT_TRUE(batch.AddSequence(a, 0, std::vector<int32_t>{9, 4}, 0).ok());
  std::vector<float> logits(79 * s.vocab);
  ASSERT_TRUE(s.model->Forward(batch, *s.cache, logits.data()).ok());
  EXPECT_EQ(0, std::memcmp(logits.data(), alone_b.data(), alone_b.size() * 4)) << "b";
  EXPECT_EQ(0, std::memcmp(logits.data() + 59 * s.vocab, alone_a.data(), alone_a.size() * 4))
      << "a";
}

TEST_P(DeterministicModel, DecodeStepsInMixedBatchesMatchPrefill) {
  MOE_SKIP_IF_NO_GPU();
  const auto [dtype, kernel] = GetParam();
  Session s(Cuda(true, kernel), dtype);
  const auto tokens = Prompt(24, 4);
  const auto prefill = RunChunked(s, tokens, 24, Blocks(0, 2));
  const auto other = Prompt(30, 5);
  std::vector<float> stepped;
  {
    batching::TokenBatch batch;
    ASSERT_TRUE(batch.AddSequence(std::span(tokens.data(), 10), 0, Blocks(0, 2), 0).ok());
    std::vector<float> logits(10 * s.vocab);
    ASSERT_TRUE(s.model->Forward(batch, *s.cache, logits.data()).ok());
    stepped = logits;
  }
  for (int pos = 10; pos < 24; ++pos) {
    batching::TokenBatch batch;
    const int other_start = (pos - 10) * 2;
    ASSERT_TRUE(
        batch.AddSequence(std::span(other.data() + other_start, 2), other_start, Blocks(10, 2), 2)
            .ok());
    ASSERT_TRUE(batch.AddSequence(std::span(tokens.data() + pos, 1), pos, Blocks(0, 2), 0).ok());
    std::vector<float> logits(s.vocab);
    ASSERT_TRUE(s.model->Forward(batch, *s.cache, logits.data()).ok());
    stepped.insert(stepped.end(), logits.begin(), logits.end());
  }
  ASSERT_EQ(stepped.size(), prefill.size());
  EXPECT_EQ(0, std::memcmp(stepped.data(), prefill.data(), prefill.size() * 4));
}

INSTANTIATE_TEST_SUITE_P(
    Modes, DeterministicModel,
    ::testing::Combine(::testing::Values(DType::kF32, DType::kBF16),
                       ::testing::Values(GroupedGemmKernel::kCublas, GroupedGemmKernel::kCustom)),
    [](const auto& info) {
      return std::string(std::get<0>(info.param) == DType::kF32 ? "F32" : "BF16") + "_" +
             (std::get<1>(info.param) == GroupedGemmKernel::kCustom ? "custom" : "fixed");
    });

}  // namespace
}  // namespace moe::cuda::testing
