#include "scheduler/scheduler_config.h"

namespace moe::scheduler {

Status SchedulerConfig::Validate() const {
  if (max_num_batched_tokens < 1) return InvalidArgument("max_num_batched_tokens must be >= 1");
  if (max_num_seqs < 1) return InvalidArgument("max_num_seqs must be >= 1");
  if (max_model_len < 2) return InvalidArgument("max_model_len must be >= 2");
  if (chunk_size < 0) return InvalidArgument("chunk_size must be >= 0");
  if (long_prefill_threshold < 0) return InvalidArgument("long_prefill_threshold must be >= 0");
  if (max_long_partial_prefills < 1) {
    return InvalidArgument("max_long_partial_prefills must be >= 1");
  }
  if (max_waiting < 1) return InvalidArgument("max_waiting must be >= 1");
  if (block_size < 1) return InvalidArgument("block_size must be >= 1");
  if (num_blocks < 1) return InvalidArgument("the KV cache must hold at least one block");
  // A sequence may grow to max_model_len; if the whole cache cannot hold one, it would preempt
  // itself forever (vLLM refuses such configurations too).
  if (static_cast<int64_t>(num_blocks) * block_size < max_model_len) {
    return InvalidArgument("the KV cache holds ", static_cast<int64_t>(num_blocks) * block_size,
                           " tokens, fewer than the context limit max_model_len=", max_model_len,
                           "; give the cache more memory (--kv-cache-bytes / --kv-cache-fraction) ",
                           "or lower --max-context");
  }
  return OkStatus();
}

std::ostream& operator<<(std::ostream& os, const SchedulerConfig& c) {
  return os << "SchedulerConfig{budget=" << c.max_num_batched_tokens
            << " max_seqs=" << c.max_num_seqs << " max_model_len=" << c.max_model_len
            << " chunk=" << c.chunk_size << " long_prefill=" << c.long_prefill_threshold << "/"
            << c.max_long_partial_prefills << " max_waiting=" << c.max_waiting
            << " policy=" << (c.policy == SchedulingPolicy::kFcfs ? "fcfs" : "priority")
            << " blocks=" << c.num_blocks << "x" << c.block_size
            << " prefix_cache=" << c.enable_prefix_caching << "}";
}

}  // namespace moe::scheduler
