#include "engine/null_step_runner.h"

namespace moe::engine {

NullStepRunner::NullStepRunner(int vocab_size, int first_token)
    : vocab_size_(vocab_size), first_token_(std::min(first_token, vocab_size - 1)) {}

StatusOr<scheduler::StepResult> NullStepRunner::Run(const scheduler::StepPlan& plan,
                                                    const scheduler::Scheduler& scheduler) {
  scheduler::StepResult result;
  result.samples.resize(plan.seqs.size());
  const uint64_t span = static_cast<uint64_t>(vocab_size_ - first_token_);
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const scheduler::ScheduledSeq& ss = plan.seqs[i];
    if (!ss.sample) continue;
    const batching::Sequence* s = scheduler.Find(ss.id);
    if (s == nullptr) return Internal("plan names unknown request ", ss.id);
    const uint64_t h = (s->seed ^ 0x9e3779b97f4a7c15ULL) * 0xbf58476d1ce4e5b9ULL +
                       static_cast<uint64_t>(s->num_tokens()) * 0x94d049bb133111ebULL;
    result.samples[i].token = first_token_ + static_cast<int32_t>((h >> 17) % span);
  }
  return result;
}

}  // namespace moe::engine
