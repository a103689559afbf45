#include "engine/batch_builder.h"

namespace moe::engine {

Status BuildTokenBatch(const scheduler::StepPlan& plan, const scheduler::Scheduler& scheduler,
                       batching::TokenBatch* batch) {
  batch->Clear();
  for (const scheduler::ScheduledSeq& ss : plan.seqs) {
    const batching::Sequence* s = scheduler.Find(ss.id);
    if (s == nullptr) return Internal("plan names unknown request ", ss.id);
    const std::span<const int32_t> tokens(s->tokens.data() + ss.start, ss.num_tokens);
    MOE_RETURN_IF_ERROR(batch->AddSequence(tokens, ss.start, ss.block_table,
                                           ss.sample ? ss.num_tokens - 1 : ss.num_tokens));
  }
  return OkStatus();
}

}  // namespace moe::engine
