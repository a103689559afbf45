#include "serving/request_stream.h"

#include <algorithm>

namespace moe::serving {

void RequestStream::OnOutput(engine::RequestOutput output) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (detached_) return;
    pending_.tokens.insert(pending_.tokens.end(), output.new_tokens.begin(),
                           output.new_tokens.end());
    pending_.logprobs.insert(pending_.logprobs.end(), output.logprobs.begin(),
                             output.logprobs.end());
    cached_tokens_ = std::max(cached_tokens_, output.cached_tokens);
    pending_.cached_tokens = cached_tokens_;
    if (output.finished) {
      pending_.finished = true;
      finished_seen_ = true;
      pending_.final = std::move(output);
    }
    has_pending_ = true;
    if (!busy_) {
      busy_ = true;
      wake = true;
    }
  }
  if (wake) wake_();
}

bool RequestStream::TakeOrIdle(StreamBatch* batch) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!has_pending_) {
    busy_ = false;
    return false;
  }
  *batch = std::move(pending_);
  pending_ = StreamBatch{};
  has_pending_ = false;
  busy_ = true;
  return true;
}

void RequestStream::MarkBusy() {
  std::lock_guard<std::mutex> lock(mu_);
  busy_ = true;
}

void RequestStream::Detach() {
  std::lock_guard<std::mutex> lock(mu_);
  detached_ = true;
}

bool RequestStream::finished_seen() const {
  std::lock_guard<std::mutex> lock(mu_);
  return finished_seen_;
}

}  // namespace moe::serving
