#include "batching/sequence.h"

#include <utility>

namespace moe::batching {

std::string_view FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kAbort:
      return "abort";
    case FinishReason::kNone:
      break;
  }
  return "";
}

Sequence::Sequence(Request r) : request(std::move(r)) {
  tokens = request.prompt;
  num_prompt_tokens = static_cast<int>(tokens.size());
  seed = request.sampling.seed.value_or(0);
}

}  // namespace moe::batching
