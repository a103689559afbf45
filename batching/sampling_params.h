// SamplingParams: how one request turns logits into tokens, and when it stops. Field meanings and
// defaults follow vLLM / OpenAI conventions; optional fields distinguish "unset" from zero.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace moe::batching {

struct SamplingParams {
  float temperature = 1.0f;           // 0 = greedy
  float top_p = 1.0f;                 // (0, 1]
  int32_t top_k = 0;                  // 0 or -1 = off
  float min_p = 0.0f;                 // [0, 1]
  float repetition_penalty = 1.0f;    // > 0; HF semantics over prompt + output tokens
  float presence_penalty = 0.0f;      // [-2, 2]; OpenAI semantics over output tokens
  float frequency_penalty = 0.0f;     // [-2, 2]
  std::optional<int32_t> max_tokens;  // unset = up to the context limit
  int32_t min_tokens = 0;
  std::vector<std::string> stop;  // stop strings (need a tokenizer)
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  std::optional<uint64_t> seed;  // unset = drawn at admission
  int32_t logprobs = 0;          // top-n logprobs per generated token; 0 = off

  bool greedy() const { return temperature == 0.0f; }

  // Checks ranges; errors name the field as "sampling.<field>".
  Status Validate(int vocab_size) const;
};

}  // namespace moe::batching
