// End-to-end engine tests on the reference CPU backend: continuous batching through the real
// EngineLoop must not change any request's tokens (DESIGN.md §4), whatever shares its steps, the
// token budget, preemption, or prefix-cache hits.
#include "engine/engine_loop.h"

#include <condition_variable>
#include <map>
#include <mutex>
#include <random>

#include <gtest/gtest.h>

#include "engine/cpu/reference_backend.h"
#include "tests/testing/test_engine.h"

namespace moe::engine {
namespace {

using testing::CollectingSink;

// The reference backend (2 threads) under the tiny preset.
struct EngineHarness : testing::TestEngine {
  explicit EngineHarness(scheduler::SchedulerConfig sc, int max_tokens_per_step = 0)
      : TestEngine(std::make_unique<cpu::ReferenceBackend>(2), sc,
                   {.max_tokens_per_step = max_tokens_per_step}) {}
};

scheduler::SchedulerConfig Config(int budget, int num_blocks = 256, int max_seqs = 64) {
  scheduler::SchedulerConfig sc;
  sc.max_num_batched_tokens = budget;
  sc.max_num_seqs = max_seqs;
  sc.max_model_len = std::min(256, num_blocks * 16);
  sc.num_blocks = num_blocks;
  sc.block_size = 16;
  return sc;
}

struct Case {
  std::vector<int32_t> prompt;
  batching::SamplingParams sampling;
};

std::vector<Case> MakeCases(int n, int seed) {
  std::mt19937 rng(seed);
  std::vector<Case> cases(n);
  for (int i = 0; i < n; ++i) {
    const int len = 1 + static_cast<int>(rng() % 60);
    for (int j = 0; j < len; ++j) cases[i].prompt.push_back(3 + static_cast<int32_t>(rng() % 500));
    cases[i].sampling.temperature = 0.f;
    cases[i].sampling.max_tokens = 4 + static_cast<int>(rng() % 12);
    cases[i].sampling.ignore_eos = true;
    if (i % 4 == 3) {  // some seeded sampled requests
      cases[i].sampling.temperature = 0.8f;
      cases[i].sampling.top_p = 0.9f;
      cases[i].sampling.seed = 100 + i;
    }
  }
  return cases;
}

// Submits all cases at once; returns each one's output ids.
std::vector<std::vector<int32_t>> RunAll(EngineHarness& h, const std::vector<Case>& cases) {
  std::vector<std::shared_ptr<CollectingSink>> sinks;
  for (const Case& c : cases) {
    batching::Request r;
    r.prompt = c.prompt;
    r.sampling = c.sampling;
    auto sink = std::make_shared<CollectingSink>();
    const Status s = h.loop->Submit(std::move(r), sink);
    MOE_CHECK(s.ok()) << s.message();
    sinks.push_back(sink);
  }
  std::vector<std::vector<int32_t>> outputs;
  for (auto& sink : sinks) {
    RequestOutput out = sink->Wait();
    EXPECT_TRUE(out.status.ok()) << out.status.message();
    EXPECT_EQ(out.output_ids, sink->streamed()) << "stream deltas must add up to the output";
    outputs.push_back(out.output_ids);
  }
  return outputs;
}

std::vector<std::vector<int32_t>> RunEachAlone(const std::vector<Case>& cases) {
  EngineHarness h(Config(512));
  std::vector<std::vector<int32_t>> outputs;
  for (const Case& c : cases) outputs.push_back(RunAll(h, {c})[0]);
  return outputs;
}

TEST(EngineLoop, ConcurrentRequestsMatchTheirSoloRuns) {
  const auto cases = MakeCases(64, 1);
  const auto alone = RunEachAlone(cases);
  EngineHarness h(Config(512));
  const auto together = RunAll(h, cases);
  ASSERT_EQ(together.size(), alone.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(together[i], alone[i]) << "request " << i;
    EXPECT_EQ(static_cast<int>(alone[i].size()), *cases[i].sampling.max_tokens);
  }
}

TEST(EngineLoop, TokenBudgetDoesNotChangeTokens) {
  const auto cases = MakeCases(24, 2);
  const auto alone = RunEachAlone(cases);
  for (int budget : {16, 64, 512}) {
    EngineHarness h(Config(budget));
    EXPECT_EQ(RunAll(h, cases), alone) << "budget " << budget;
  }
}

TEST(EngineLoop, PreemptionAndResumptionDoNotChangeTokens) {
  const auto cases = MakeCases(16, 3);
  const auto alone = RunEachAlone(cases);
  // 12 blocks of 16 tokens cannot hold 16 running sequences: preemption by recompute.
  EngineHarness h(Config(128, 12));
  EXPECT_EQ(RunAll(h, cases), alone);
  EXPECT_GT(h.loop->Stats().total_preemptions, 0);
}

TEST(EngineLoop, PrefixCacheHitsDoNotChangeTokens) {
  std::vector<Case> cases = MakeCases(2, 4);
  std::vector<int32_t> shared(40);
  for (int i = 0; i < 40; ++i) shared[i] = 10 + i;
  cases[0].prompt = shared;
  cases[0].prompt.push_back(7);
  cases[1].prompt = shared;
  cases[1].prompt.push_back(8);
  const auto alone = RunEachAlone(cases);
  EngineHarness h(Config(512));
  const auto first = RunAll(h, {cases[0]});
  batching::Request r;
  r.prompt = cases[1].prompt;
  r.sampling = cases[1].sampling;
  auto sink = std::make_shared<CollectingSink>();
  ASSERT_TRUE(h.loop->Submit(std::move(r), sink).ok());
  const RequestOutput out = sink->Wait();
  EXPECT_EQ(first[0], alone[0]);
  EXPECT_EQ(out.output_ids, alone[1]);
  EXPECT_EQ(out.cached_tokens, 32);  // two full blocks of the shared 40-token prefix
}

TEST(EngineLoop, RejectsBadRequestsAndKeepsServing) {
  EngineHarness h(Config(512));
  auto sink = std::make_shared<CollectingSink>();
  batching::Request bad;
  bad.prompt = {1, 99999};
  Status s = h.loop->Submit(bad, sink);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(s.message()).find("input_ids[1]"), std::string::npos) << s.message();
  batching::Request empty;
  EXPECT_EQ(h.loop->Submit(empty, sink).code(), absl::StatusCode::kInvalidArgument);
  batching::Request hot;
  hot.prompt = {1, 2};
  hot.sampling.temperature = -1;
  s = h.loop->Submit(hot, sink);
  EXPECT_NE(std::string(s.message()).find("sampling.temperature"), std::string::npos);
  batching::Request too_long;
  too_long.prompt = std::vector<int32_t>(250, 5);
  too_long.sampling.max_tokens = 10;
  s = h.loop->Submit(too_long, sink);
  EXPECT_NE(std::string(s.message()).find("max_tokens"), std::string::npos) << s.message();
  const auto ok = RunAll(h, MakeCases(2, 5));
  EXPECT_EQ(ok.size(), 2u);
}

TEST(EngineLoop, AbortFinishesWithinAStepAndFreesBlocks) {
  EngineHarness h(Config(64));
  batching::Request r;
  r.prompt = {5, 6, 7};
  r.sampling.max_tokens = 200;
  r.sampling.ignore_eos = true;
  r.id = h.loop->NextId();
  const batching::RequestId id = r.id;
  auto sink = std::make_shared<CollectingSink>();
  ASSERT_TRUE(h.loop->Submit(std::move(r), sink).ok());
  while (sink->streamed().size() < 3) std::this_thread::yield();
  h.loop->Abort(id);
  const RequestOutput out = sink->Wait();
  EXPECT_EQ(out.finish_reason, batching::FinishReason::kAbort);
  EXPECT_LT(out.completion_tokens, 200);
  ASSERT_TRUE(h.loop->WaitIdle(5000));
  // The stats are refreshed after each step; one more tiny request makes sure we see them.
  RunAll(h, MakeCases(1, 6));
  EXPECT_EQ(h.loop->Stats().kv_usage, 0.0);
}

TEST(EngineLoop, StopsOnEosUnlessIgnored) {
  EngineHarness h(Config(512));
  const auto base = MakeCases(1, 7);
  const auto free_run = RunAll(h, base)[0];
  ASSERT_GE(free_run.size(), 3u);
  // Treat the second generated token as a stop token: generation ends right there.
  Case c = base[0];
  c.sampling.stop_token_ids = {free_run[1]};
  batching::Request r;
  r.prompt = c.prompt;
  r.sampling = c.sampling;
  auto sink = std::make_shared<CollectingSink>();
  ASSERT_TRUE(h.loop->Submit(std::move(r), sink).ok());
  const RequestOutput out = sink->Wait();
  const size_t first_hit =
      std::find(free_run.begin(), free_run.end(), free_run[1]) - free_run.begin();
  EXPECT_EQ(out.output_ids,
            std::vector<int32_t>(free_run.begin(), free_run.begin() + first_hit + 1));
  EXPECT_EQ(out.finish_reason, batching::FinishReason::kStop);
  EXPECT_EQ(out.matched_stop_token, free_run[1]);
}

}  // namespace
}  // namespace moe::engine
