// Sequence: the engine's state for one request. Two counters drive everything (DESIGN.md §2):
// num_computed_tokens (positions whose K/V are in the cache) and num_tokens() (prompt + generated
// tokens). Each step the scheduler decides how far num_computed_tokens advances; when it reaches
// num_tokens() the step samples the next token.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "batching/request.h"

namespace moe::batching {

enum class SequenceStatus { kWaiting, kRunning, kFinished };

enum class FinishReason { kNone, kStop, kLength, kAbort };
std::string_view FinishReasonName(FinishReason reason);  // "stop", "length", "abort"

struct Sequence {
  explicit Sequence(Request request);

  Request request;
  std::vector<int32_t> tokens;  // prompt followed by generated tokens
  int num_prompt_tokens = 0;
  int num_computed_tokens = 0;
  SequenceStatus status = SequenceStatus::kWaiting;
  std::vector<int32_t> block_table;  // KV blocks, in position order
  // Prefix-cache chain hashes of the full blocks of `tokens`, computed lazily (tokens only grow,
  // so a computed hash never changes).
  std::vector<uint64_t> block_hashes;
  uint64_t seed = 0;  // sampling RNG key (with the position)

  // Outcome.
  FinishReason finish_reason = FinishReason::kNone;
  int32_t matched_stop_token = -1;  // the EOS / stop token that ended it, or -1
  std::string matched_stop_string;

  // Accounting for responses and logs.
  int num_cached_tokens = 0;  // prompt tokens served from the prefix cache (first admission)
  int num_preemptions = 0;
  int num_steps_scheduled = 0;
  int64_t first_scheduled_ns = 0;  // monotonic; 0 = not yet
  int64_t first_token_ns = 0;
  int64_t last_token_ns = 0;
  // Monotonic: the step that produced its last token, or the moment it was aborted / failed.
  int64_t finished_ns = 0;
  int64_t last_itl_ns = 0;            // gap between its last two tokens (0 after the first token)
  int64_t max_itl_ns = 0;             // largest gap between consecutive tokens
  int batch_size_at_first_token = 0;  // sequences in the step that sampled its first token

  RequestId id() const { return request.id; }
  int num_tokens() const { return static_cast<int>(tokens.size()); }
  int num_generated() const { return num_tokens() - num_prompt_tokens; }
  // Tokens whose K/V still have to be computed before the next sample.
  int num_uncomputed() const { return num_tokens() - num_computed_tokens; }
  // True while the prompt (or, after preemption, the recomputed prefix) is being prefilled.
  bool in_prefill() const { return num_uncomputed() > 1; }
  bool finished() const { return status == SequenceStatus::kFinished; }
};

}  // namespace moe::batching
