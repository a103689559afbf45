// EngineObserver: how metrics and logs watch the engine without the engine knowing about them
// (the engine never includes serving/ or prometheus). The engine thread calls it once per
// committed (or failed) step and once per finished request; with no observer attached the engine
// builds none of this (one pointer test per step).
//
// Threads: both calls run on the engine thread, inside the step loop. Implementations must not
// block: update atomics, take short uncontended locks, append to buffers.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "batching/routing_trace.h"
#include "batching/sequence.h"
#include "core/status.h"
#include "scheduler/step_result.h"

namespace moe::engine {

// What a step computed: only prompt positions, only decode tokens, or both.
enum class StepPhase { kPrefill, kDecode, kMixed };

inline std::string_view StepPhaseName(StepPhase phase) {
  switch (phase) {
    case StepPhase::kPrefill:
      return "prefill";
    case StepPhase::kDecode:
      return "decode";
    case StepPhase::kMixed:
      return "mixed";
  }
  return "mixed";
}

struct StepStats {
  uint64_t step = 0;
  int64_t wall_ns = 0;  // when the step ended, wall clock ns since the epoch
  StepPhase phase = StepPhase::kDecode;
  bool failed = false;  // the step failed and was not committed (its requests end INTERNAL)

  int num_seqs = 0;              // batch size: sequences computed in this step
  int num_tokens = 0;            // positions computed
  int num_prompt_tokens = 0;     // of those, prompt positions (prefill chunks)
  int num_generated_tokens = 0;  // tokens sampled (sequences whose range reached their end)
  int num_preempted = 0;         // sequences preempted by recompute in this step

  int64_t step_ns = 0;             // schedule + run + update + publish, monotonic
  scheduler::StepTimings timings;  // per-phase and per-op times (0 = not measured)

  // Inter-token latencies of this step's tokens: for every sequence that got a token and already
  // had one, the gap since its previous token (ns).
  std::span<const int64_t> itl_ns;  // [tokens with a predecessor]
  // Experts each token was routed to; null unless routing is collected and the step succeeded.
  const batching::RoutingTrace* routing = nullptr;

  // Engine state after the step.
  int num_running = 0;
  int num_waiting = 0;
  int64_t num_waiting_tokens = 0;
  double kv_usage = 0;                // fraction of KV blocks in use
  int64_t prefix_queried_tokens = 0;  // cumulative prompt tokens looked up in the prefix cache
  int64_t prefix_hit_tokens = 0;      // cumulative of those found
  int64_t total_preemptions = 0;
};

// A request the engine finished (any reason), with its engine-side accounting. Timestamps are
// wall-clock ns since the epoch; 0 = did not happen.
struct RequestFinishRecord {
  batching::RequestId id = 0;
  std::string_view external_id;  // valid during the call only
  batching::FinishReason finish_reason = batching::FinishReason::kNone;
  absl::StatusCode status_code = absl::StatusCode::kOk;  // kOk, or why the engine failed it
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_tokens = 0;
  int num_preemptions = 0;
  int num_steps = 0;  // steps that computed some of its positions
  int batch_size_at_first_token = 0;
  int64_t max_itl_ns = 0;
  int64_t arrival_ns = 0;
  int64_t first_scheduled_ns = 0;
  int64_t first_token_ns = 0;
  int64_t last_token_ns = 0;
  int64_t finished_ns = 0;
};

class EngineObserver {
 public:
  virtual ~EngineObserver() = default;
  virtual void OnStep(const StepStats& stats) = 0;
  virtual void OnRequestFinished(const RequestFinishRecord& record) {}
};

}  // namespace moe::engine
