// SchedulerConfig: the limits and policies of continuous batching. Defaults suit a small CPU
// deployment; app/ sets them from flags.
#pragma once

#include <ostream>

#include "core/status.h"

namespace moe::scheduler {

enum class SchedulingPolicy { kFcfs, kPriority };

struct SchedulerConfig {
  int max_num_batched_tokens = 512;  // token budget of one step
  int max_num_seqs = 64;             // running sequences
  int max_model_len = 4096;          // context limit: prompt + output tokens
  int chunk_size = 0;                // prefill tokens per sequence per step; 0 = the budget
  // Prefills with more uncomputed tokens than this are "long"; at most max_long_partial_prefills
  // of them advance per step so short prompts are not stuck behind them. 0 = no distinction.
  int long_prefill_threshold = 0;
  int max_long_partial_prefills = 1;
  int max_waiting = 1024;  // bounded waiting queue; beyond it Add() is RESOURCE_EXHAUSTED
  SchedulingPolicy policy = SchedulingPolicy::kFcfs;
  int block_size = 16;
  int num_blocks = 0;  // KV blocks in the pool
  bool enable_prefix_caching = true;

  Status Validate() const;
};

std::ostream& operator<<(std::ostream& os, const SchedulerConfig& c);

}  // namespace moe::scheduler
