// Host overhead of one engine step without any model cost: Scheduler::Schedule, building the
// TokenBatch, and Scheduler::Update with a fabricated result (what the zero-cost runner returns),
// at 32..512 running sequences in steady decode. Target (scheduler issue): <= 100 us per step at
// 256 running sequences.
#include <benchmark/benchmark.h>

#include <random>

#include "engine/batch_builder.h"
#include "scheduler/scheduler.h"

namespace moe {
namespace {

void BM_StepHostOverhead(benchmark::State& state) {
  const int num_seqs = static_cast<int>(state.range(0));
  scheduler::SchedulerConfig config;
  config.max_num_seqs = num_seqs;
  config.max_num_batched_tokens = 8192;
  config.max_model_len = 4096;
  config.block_size = 16;
  config.num_blocks = num_seqs * 4096 / 16;
  config.max_waiting = 4 * num_seqs;
  scheduler::Scheduler sched(config, {2});
  std::mt19937 rng(7);
  for (int i = 0; i < num_seqs; ++i) {
    batching::Request r;
    r.id = static_cast<batching::RequestId>(i + 1);
    r.arrival_ns = i;
    r.prompt.resize(128 + rng() % 512);
    for (int32_t& t : r.prompt) t = 3 + static_cast<int32_t>(rng() % 30000);
    r.sampling.max_tokens = 3000;
    r.sampling.ignore_eos = true;
    if (!sched.Add(std::move(r)).ok()) state.SkipWithError("Add failed");
  }
  batching::TokenBatch batch;
  scheduler::StepResult result;
  int32_t next_token = 3;
  auto step = [&] {
    scheduler::StepPlan plan = sched.Schedule();
    if (!engine::BuildTokenBatch(plan, sched, &batch).ok()) state.SkipWithError("batch");
    result.samples.assign(plan.seqs.size(), scheduler::SampleOutput{});
    for (size_t i = 0; i < plan.seqs.size(); ++i) {
      if (plan.seqs[i].sample) result.samples[i].token = next_token++ % 30000 + 3;
    }
    sched.Update(plan, result);
    return plan.num_tokens;
  };
  // Prefill everything first: the measured steps are steady-state decodes (one token each).
  while (step() != num_seqs || sched.num_waiting() > 0) {
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(step());
  }
  state.counters["running"] = sched.num_running();
}
// 2000 steps: every sequence stays running (max_tokens 3000) for the whole measurement.
BENCHMARK(BM_StepHostOverhead)
    ->Arg(32)
    ->Arg(128)
    ->Arg(256)
    ->Arg(512)
    ->Iterations(2000)
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace moe

BENCHMARK_MAIN();
