#include "serving/request_gateway.h"

#include "absl/strings/str_cat.h"
#include "core/clock.h"

namespace moe::serving {

RequestGateway::RequestGateway(engine::EngineLoop* loop, ModelInfo info,
                               const model::Tokenizer* tokenizer)
    : loop_(loop), info_(std::move(info)), tokenizer_(tokenizer) {}

StatusOr<SubmittedRequest> RequestGateway::Submit(GenerationRequest r,
                                                  std::shared_ptr<engine::OutputSink> sink) {
  if (draining_.load()) return Unavailable("the server is draining; retry on another replica");
  if (!ready_.load()) return Unavailable("the model is not ready yet");
  batching::Request request;
  request.arrival_ns = MonotonicNanos();
  request.arrival_wall_ns = WallNanos();
  const bool has_ids = !r.input_ids.empty();
  const bool has_text = r.text.has_value() && !r.text->empty();
  if (has_ids && has_text) {
    return InvalidArgument("give either input_ids or text, not both");
  }
  if (has_text) {
    if (tokenizer_ == nullptr) {
      return InvalidArgument("text: this model has no tokenizer; send input_ids");
    }
    auto ids = tokenizer_->Encode(*r.text);
    if (!ids.ok()) return Annotate(ids.status(), "text");
    request.prompt = std::move(*ids);
  } else {
    const int vocab = info_.config.vocab_size;
    request.prompt.reserve(r.input_ids.size());
    for (size_t i = 0; i < r.input_ids.size(); ++i) {
      if (r.input_ids[i] < 0 || r.input_ids[i] >= vocab) {
        return InvalidArgument("input_ids[", i, "] = ", r.input_ids[i],
                               " is outside the vocabulary [0, ", vocab, ")");
      }
      request.prompt.push_back(static_cast<int32_t>(r.input_ids[i]));
    }
  }
  if (request.prompt.empty()) return InvalidArgument("input_ids: the prompt is empty");
  request.sampling = std::move(r.sampling);
  request.priority = r.priority;
  request.id = loop_->NextId();
  request.external_id =
      r.external_id.empty() ? absl::StrCat("req-", request.id) : std::move(r.external_id);
  SubmittedRequest submitted{request.id, request.external_id,
                             static_cast<int>(request.prompt.size())};
  {
    std::lock_guard<std::mutex> lock(mu_);
    by_external_id_.emplace(submitted.external_id, submitted.id);
    external_of_.emplace(submitted.id, submitted.external_id);
  }
  Status status = loop_->Submit(std::move(request), std::move(sink));
  if (!status.ok()) {
    Forget(submitted.id);
    return status;
  }
  return submitted;
}

void RequestGateway::Abort(batching::RequestId id) { loop_->Abort(id); }

int RequestGateway::AbortByExternalId(const std::string& external_id) {
  std::vector<batching::RequestId> ids;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto [begin, end] = by_external_id_.equal_range(external_id);
    for (auto it = begin; it != end; ++it) ids.push_back(it->second);
  }
  for (batching::RequestId id : ids) loop_->Abort(id);
  return static_cast<int>(ids.size());
}

void RequestGateway::StopMatched(batching::RequestId id, const std::string& stop) {
  loop_->StopRequest(id, stop);
}

void RequestGateway::Forget(batching::RequestId id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = external_of_.find(id);
  if (it == external_of_.end()) return;
  auto [begin, end] = by_external_id_.equal_range(it->second);
  for (auto e = begin; e != end; ++e) {
    if (e->second == id) {
      by_external_id_.erase(e);
      break;
    }
  }
  external_of_.erase(it);
}

}  // namespace moe::serving
