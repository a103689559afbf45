// Sampler: logits row -> next token, following vLLM's order of operations: min-tokens stop
// suppression, repetition penalty (HF semantics, over prompt and output), presence / frequency
// penalties (OpenAI semantics, over output), then greedy argmax or temperature -> min-p -> top-k
// -> top-p -> a draw. The draw's uniform number is a pure function of (seed, position), so a
// seeded request samples the same tokens in any batch (DESIGN.md §4).
//
// Logprobs are the model's raw log-softmax (before penalties and temperature), as vLLM returns.
// Threads: one Sampler per compute thread (it owns scratch buffers).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "batching/sampling_params.h"
#include "scheduler/step_result.h"

namespace moe::engine {

struct SampleRequest {
  const float* logits = nullptr;  // [vocab]
  const batching::SamplingParams* params = nullptr;
  uint64_t seed = 0;
  int64_t position = 0;                  // position of the token being sampled
  std::span<const int32_t> prompt;       // for the repetition penalty
  std::span<const int32_t> output;       // generated so far
  std::span<const int32_t> stop_tokens;  // suppressed while output.size() < min_tokens
};

class Sampler {
 public:
  explicit Sampler(int vocab_size);
  scheduler::SampleOutput Sample(const SampleRequest& request);

  // The uniform number in [0, 1) used for (seed, position).
  static double Uniform(uint64_t seed, int64_t position);

 private:
  int vocab_;
  std::vector<float> work_;      // [vocab] processed logits, then probabilities
  std::vector<int32_t> order_;   // candidate token ids
  std::vector<int32_t> counts_;  // [vocab] output-token counts (reset after use)
};

}  // namespace moe::engine
