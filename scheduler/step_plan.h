// StepPlan: what one engine step computes, as plain data (DESIGN.md §2). Produced by
// Scheduler::Schedule() without changing any state; Scheduler::Update() commits it together with
// the StepResult. Tests build plans by hand.
#pragma once

#include <cstdint>
#include <vector>

#include "batching/request.h"
#include "scheduler/kv_block_pool.h"

namespace moe::scheduler {

struct ScheduledSeq {
  batching::RequestId id = 0;
  int start = 0;          // first position computed (== the sequence's num_computed_tokens)
  int num_tokens = 0;     // positions [start, start + num_tokens) are computed this step
  bool sample = false;    // the range reaches the last known token: sample the next one
  bool admitted = false;  // the sequence was waiting and becomes running
  // The whole block table after this step: the first num_touched_blocks are prefix-cache hits
  // taken at admission, the last num_new_blocks are allocated by this step.
  std::vector<BlockId> block_table;
  int num_touched_blocks = 0;
  int num_new_blocks = 0;
};

struct StepPlan {
  uint64_t step = 0;
  int64_t scheduled_ns = 0;  // monotonic time the plan was made (a request's first-scheduled time)
  // Batch order: decodes first, then prefill chunks (continuing ones, then admissions).
  std::vector<ScheduledSeq> seqs;
  // Running sequences preempted by recompute: their blocks are released and they wait again.
  std::vector<batching::RequestId> preempted;
  int num_tokens = 0;  // sum of seqs[i].num_tokens

  bool empty() const { return seqs.empty() && preempted.empty(); }
  int num_samples() const;
};

}  // namespace moe::scheduler
