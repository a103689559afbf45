// StepResult: what a step produced: the sampled token (and logprobs) of every scheduled sequence
// that samples, the routing trace, and timings. Plain data; tests fabricate it.
#pragma once

#include <cstdint>
#include <vector>

#include "batching/routing_trace.h"

namespace moe::scheduler {

struct TokenLogprob {
  int32_t token = -1;
  float logprob = 0.f;
};

struct SampleOutput {
  int32_t token = -1;             // -1 = this sequence did not sample
  float logprob = 0.f;            // of `token` under the model's distribution (when requested)
  std::vector<TokenLogprob> top;  // top-n alternatives (when requested)
};

struct StepTimings {
  int64_t schedule_ns = 0;
  int64_t prepare_ns = 0;  // building the batch
  int64_t forward_ns = 0;
  int64_t sample_ns = 0;
  int64_t update_ns = 0;
  // Per-op totals over the step's MoE layers (host-synchronous backends; 0 = not measured).
  int64_t expert_dispatch_ns = 0;  // Permute + UnpermuteCombine
  int64_t grouped_gemm_ns = 0;     // GroupedGemmSwiGlu + GroupedGemm
};

struct StepResult {
  std::vector<SampleOutput> samples;  // [plan.seqs.size()], aligned with the plan
  batching::RoutingTrace routing;
  StepTimings timings;
};

}  // namespace moe::scheduler
