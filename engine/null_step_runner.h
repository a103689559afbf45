// NullStepRunner: a zero-cost model. Every step "samples" a deterministic token per sequence
// (a function of the request's seed and the position) without computing anything, so the engine
// loop, scheduler, serving stack and load tools can be measured with no model cost: the host
// overhead and streaming benchmarks run on it (`moeserve serve --backend null`).
#pragma once

#include "engine/executor.h"

namespace moe::engine {

class NullStepRunner final : public StepRunner {
 public:
  // Tokens are drawn from [first_token, vocab_size), avoiding EOS and other low special ids.
  NullStepRunner(int vocab_size, int first_token);
  StatusOr<scheduler::StepResult> Run(const scheduler::StepPlan& plan,
                                      const scheduler::Scheduler& scheduler) override;

 private:
  int vocab_size_;
  int first_token_;
};

}  // namespace moe::engine
