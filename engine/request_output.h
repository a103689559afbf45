// RequestOutput: what the engine tells the owner of a request after a step: new tokens (a delta),
// and on the last message the outcome and accounting. OutputSink receives them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "batching/sequence.h"
#include "core/status.h"
#include "scheduler/step_result.h"

namespace moe::engine {

struct RequestOutput {
  batching::RequestId id = 0;
  std::vector<int32_t> new_tokens;                // since the previous output
  std::vector<scheduler::SampleOutput> logprobs;  // aligned with new_tokens when requested
  bool finished = false;

  // Counts so far (every output).
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_tokens = 0;

  // Set on the final output.
  Status status;  // OK, or why the request failed (the finish reason is then kAbort)
  batching::FinishReason finish_reason = batching::FinishReason::kNone;
  int32_t matched_stop_token = -1;
  std::string matched_stop_string;
  std::vector<int32_t> output_ids;  // every generated token
  int num_preemptions = 0;
  // Wall-clock nanoseconds since the epoch (0 = did not happen).
  int64_t arrival_time_ns = 0;
  int64_t first_scheduled_time_ns = 0;
  int64_t first_token_time_ns = 0;
  int64_t last_token_time_ns = 0;
  int64_t finished_time_ns = 0;  // the step of its last token, or when it was aborted / failed
  // More accounting for logs and metrics (final output).
  int64_t max_itl_ns = 0;             // largest gap between consecutive tokens
  int num_steps = 0;                  // engine steps that computed some of its positions
  int batch_size_at_first_token = 0;  // sequences in the step of its first token
  uint64_t seed = 0;                  // the sampling seed used (drawn by the engine when unset)
};

// Receives a request's outputs. Called on the engine thread: implementations must not block
// (append to a buffer and wake the writer). The final output has finished = true and is the last
// call for that request.
class OutputSink {
 public:
  virtual ~OutputSink() = default;
  virtual void OnOutput(RequestOutput output) = 0;
};

}  // namespace moe::engine
