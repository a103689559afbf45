#include "batching/sampling_params.h"

#include <cmath>

namespace moe::batching {

Status SamplingParams::Validate(int vocab_size) const {
  if (!std::isfinite(temperature) || temperature < 0.f) {
    return InvalidArgument("sampling.temperature must be a finite value >= 0, got ", temperature);
  }
  if (!(top_p > 0.f && top_p <= 1.f)) {
    return InvalidArgument("sampling.top_p must be in (0, 1], got ", top_p);
  }
  if (top_k < -1) return InvalidArgument("sampling.top_k must be >= 0 (or -1 = off), got ", top_k);
  if (!(min_p >= 0.f && min_p <= 1.f)) {
    return InvalidArgument("sampling.min_p must be in [0, 1], got ", min_p);
  }
  if (!(repetition_penalty > 0.f) || !std::isfinite(repetition_penalty)) {
    return InvalidArgument("sampling.repetition_penalty must be > 0, got ", repetition_penalty);
  }
  if (!(presence_penalty >= -2.f && presence_penalty <= 2.f)) {
    return InvalidArgument("sampling.presence_penalty must be in [-2, 2], got ", presence_penalty);
  }
  if (!(frequency_penalty >= -2.f && frequency_penalty <= 2.f)) {
    return InvalidArgument("sampling.frequency_penalty must be in [-2, 2], got ",
                           frequency_penalty);
  }
  if (max_tokens.has_value() && *max_tokens < 1) {
    return InvalidArgument("sampling.max_tokens must be >= 1, got ", *max_tokens);
  }
  if (min_tokens < 0) return InvalidArgument("sampling.min_tokens must be >= 0, got ", min_tokens);
  if (max_tokens.has_value() && min_tokens > *max_tokens) {
    return InvalidArgument("sampling.min_tokens (", min_tokens, ") exceeds sampling.max_tokens (",
                           *max_tokens, ")");
  }
  for (size_t i = 0; i < stop.size(); ++i) {
    if (stop[i].empty()) return InvalidArgument("sampling.stop[", i, "] is empty");
  }
  for (size_t i = 0; i < stop_token_ids.size(); ++i) {
    if (stop_token_ids[i] < 0 || stop_token_ids[i] >= vocab_size) {
      return InvalidArgument("sampling.stop_token_ids[", i, "] = ", stop_token_ids[i],
                             " is outside the vocabulary [0, ", vocab_size, ")");
    }
  }
  if (logprobs < 0 || logprobs > 20) {
    return InvalidArgument("sampling.logprobs must be in [0, 20], got ", logprobs);
  }
  return OkStatus();
}

}  // namespace moe::batching
