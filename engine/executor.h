// Executor: runs a StepPlan on the model: builds the ragged TokenBatch from the plan and the
// sequences' tokens, runs Model::Forward, and samples the next token of every sequence whose
// range reaches its end. Returns a StepResult aligned with the plan.
//
// Threads: the engine thread. Reads sequences through the scheduler; mutates nothing there.
#pragma once

#include <memory>
#include <vector>

#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "scheduler/scheduler.h"

namespace moe::engine {

// Runs steps; the base class is the real thing, tests and host-overhead benchmarks substitute a
// zero-cost implementation.
class StepRunner {
 public:
  virtual ~StepRunner() = default;
  virtual StatusOr<scheduler::StepResult> Run(const scheduler::StepPlan& plan,
                                              const scheduler::Scheduler& scheduler) = 0;
};

struct ExecutorOptions {
  bool collect_routing = false;  // fill StepResult::routing
};

class Executor final : public StepRunner {
 public:
  Executor(Model* model, KvCache* cache, const ExecutorOptions& options);
  StatusOr<scheduler::StepResult> Run(const scheduler::StepPlan& plan,
                                      const scheduler::Scheduler& scheduler) override;

 private:
  Model* model_;
  KvCache* cache_;
  ExecutorOptions options_;
  Sampler sampler_;
  batching::TokenBatch batch_;
  std::vector<float> logits_;  // [max_logit_rows, vocab]
  std::vector<int32_t> stop_tokens_;
};

}  // namespace moe::engine
