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
  std::vector<int32_t> new_tokens;               // since the previous output
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
