// Building a step's ragged TokenBatch from its plan: each scheduled sequence contributes the
// tokens of its range, its block table, and (when it samples) one logits row. Shared by the
// Executor and the host-overhead benchmark so both measure the same code.
#pragma once

#include "batching/token_batch.h"
#include "scheduler/scheduler.h"

namespace moe::engine {

// Clears `batch` (keeping its capacity) and fills it from `plan`.
Status BuildTokenBatch(const scheduler::StepPlan& plan, const scheduler::Scheduler& scheduler,
                       batching::TokenBatch* batch);

}  // namespace moe::engine
