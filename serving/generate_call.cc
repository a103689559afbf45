#include "serving/generate_call.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "serving/grpc_status.h"
#include "serving/metrics_telemetry.h"
#include "serving/proto_convert.h"
#include "serving/request_log_context.h"

namespace moe::serving {

namespace pb = moeserve::v1;

GenerateCall::GenerateCall(grpc::CallbackServerContext* context, const pb::GenerateRequest* request,
                           RequestGateway* gateway, int64_t retry_after_ms)
    : context_(context),
      gateway_(gateway),
      retry_after_ms_(retry_after_ms),
      state_(std::make_shared<State>()) {
  std::lock_guard<std::recursive_mutex> lock(state_->mu);
  state_->call = this;
  streaming_ = request->stream();
  return_perf_ = request->return_perf_metrics();
  want_logprobs_ = request->logprobs() > 0;
  telemetry_ = Telemetry::Of(*gateway);
  if (telemetry_ != nullptr) {
    record_ = std::make_unique<RequestRecord>();
    RequestRecord& r = *record_;
    r.api = ApiKind::kNative;
    NoteCallContext(*context, &r);
    r.request_id = request->request_id();
    r.model = gateway->info().served_model_name;
    r.stream = streaming_;
    r.priority = request->priority();
    r.kv_block_size = gateway->info().kv_block_size;
    r.tags.assign(request->tags().begin(), request->tags().end());
    std::sort(r.tags.begin(), r.tags.end());
    if (telemetry_->log_prompts()) {
      if (!request->text().empty()) r.prompt_text = request->text();
      r.prompt_ids.assign(request->input_ids().begin(), request->input_ids().end());
    }
    telemetry_->StreamOpened(ApiKind::kNative, ServingMetrics::kRpcGenerate);
  }
  StatusOr<GenerationRequest> parsed = FromProto(*request);
  if (!parsed.ok()) {
    FinishLocked(ToGrpcStatus(parsed.status()));
    return;
  }
  if (record_ != nullptr) record_->NoteSampling(parsed->sampling);
  if (!parsed->sampling.stop.empty() && gateway->tokenizer() == nullptr) {
    FinishLocked(
        ToGrpcStatus(InvalidArgument("sampling.stop: stop strings need a model with a tokenizer")));
    return;
  }
  if (gateway->tokenizer() != nullptr) text_.emplace(*gateway->tokenizer(), parsed->sampling.stop);
  std::weak_ptr<State> weak = state_;
  stream_ = std::make_shared<RequestStream>([weak] {
    if (auto state = weak.lock()) {
      std::lock_guard<std::recursive_mutex> lock(state->mu);
      if (state->call != nullptr) state->call->WriteNextLocked();
    }
  });
  StatusOr<SubmittedRequest> submitted = gateway->Submit(std::move(*parsed), stream_);
  if (!submitted.ok()) {
    FinishLocked(ToGrpcStatus(submitted.status()));
    return;
  }
  submitted_ = *submitted;
  submitted_ok_ = true;
  if (record_ != nullptr) {
    record_->engine_id = submitted_.id;
    record_->request_id = submitted_.external_id;
    record_->prompt_tokens = submitted_.prompt_tokens;
  }
}

bool GenerateCall::BuildMessage(StreamBatch& batch) {
  // Text and stop strings.
  std::string text;
  if (text_.has_value() && !stopped_by_text_) {
    TextStream::Delta delta = text_->Add(batch.tokens);
    text = std::move(delta.text);
    if (delta.stopped) {
      stopped_by_text_ = true;
      batch.tokens.resize(delta.tokens_kept);
      if (batch.logprobs.size() > delta.tokens_kept) batch.logprobs.resize(delta.tokens_kept);
      if (!batch.finished) gateway_->StopMatched(submitted_.id, text_->matched_stop());
    }
    if (batch.finished) text += text_->Finish();
  } else if (stopped_by_text_) {
    batch.tokens.clear();  // produced after the stop string: not part of the output
    batch.logprobs.clear();
  }
  sent_tokens_ += static_cast<int>(batch.tokens.size());
  message_.Clear();
  message_.set_request_id(submitted_.external_id);
  if (!streaming_) {
    unary_tokens_.insert(unary_tokens_.end(), batch.tokens.begin(), batch.tokens.end());
    unary_logprobs_.insert(unary_logprobs_.end(), batch.logprobs.begin(), batch.logprobs.end());
    unary_text_ += text;
    if (!batch.finished) return false;
    batch.tokens = std::move(unary_tokens_);
    batch.logprobs = std::move(unary_logprobs_);
    text = std::move(unary_text_);
  }
  if (!batch.finished) {
    if (batch.tokens.empty() && text.empty()) return false;
    pb::Chunk* chunk = message_.mutable_chunk();
    for (int32_t t : batch.tokens) chunk->add_token_ids(static_cast<uint32_t>(t));
    chunk->set_text(std::move(text));
    chunk->set_prompt_tokens(submitted_.prompt_tokens);
    chunk->set_completion_tokens(sent_tokens_);
    chunk->set_cached_tokens(batch.cached_tokens);
    if (want_logprobs_) AddLogprobs(batch.logprobs, chunk->mutable_logprobs());
    ++num_chunks_sent_;
    return true;
  }
  const engine::RequestOutput& out = batch.final;
  if (record_ != nullptr) {
    if (stopped_by_text_) {
      record_->stopped_by_text = true;
      record_->finish_reason = batching::FinishReason::kStop;
      record_->matched_stop_string = text_->matched_stop();
      record_->completion_tokens = sent_tokens_;
    }
    record_->NoteFinal(out);
    final_noted_ = true;
  }
  pb::Complete* complete = message_.mutable_complete();
  for (int32_t t : batch.tokens) complete->add_output_ids(static_cast<uint32_t>(t));
  complete->set_text(std::move(text));
  if (stopped_by_text_) {
    complete->set_finish_reason(pb::STOP);
    complete->set_matched_stop_str(text_->matched_stop());
  } else {
    complete->set_finish_reason(ToProto(out.finish_reason));
    if (out.matched_stop_token >= 0) {
      complete->set_matched_token_id(static_cast<uint32_t>(out.matched_stop_token));
    } else if (!out.matched_stop_string.empty()) {
      complete->set_matched_stop_str(out.matched_stop_string);
    }
  }
  complete->set_prompt_tokens(out.prompt_tokens);
  complete->set_completion_tokens(stopped_by_text_ ? sent_tokens_ : out.completion_tokens);
  complete->set_cached_tokens(out.cached_tokens);
  if (want_logprobs_) AddLogprobs(batch.logprobs, complete->mutable_logprobs());
  if (return_perf_) {
    pb::PerfMetrics* perf = complete->mutable_perf();
    perf->set_arrival_time_ns(out.arrival_time_ns);
    perf->set_first_scheduled_time_ns(out.first_scheduled_time_ns);
    perf->set_first_token_time_ns(out.first_token_time_ns);
    perf->set_last_token_time_ns(out.last_token_time_ns);
    perf->set_num_preemptions(out.num_preemptions);
    perf->set_num_chunks_sent(num_chunks_sent_ + 1);
  }
  return true;
}

void GenerateCall::WriteNextLocked() {
  if (finish_called_ || write_in_flight_) return;
  if (cancelled_) {
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the request was cancelled"));
    return;
  }
  StreamBatch batch;
  while (stream_->TakeOrIdle(&batch)) {
    if (batch.finished && !batch.final.status.ok()) {
      if (record_ != nullptr) {
        record_->NoteFinal(batch.final);
        final_noted_ = true;
      }
      FinishLocked(ToGrpcStatus(batch.final.status));
      return;
    }
    if (BuildMessage(batch)) {
      final_written_ = batch.finished;
      write_in_flight_ = true;
      StartWrite(&message_);
      return;
    }
    batch = StreamBatch{};
  }
}

void GenerateCall::FinishLocked(const grpc::Status& status) {
  if (finish_called_) return;
  finish_called_ = true;
  if (record_ != nullptr) NoteCallStatus(status, record_.get());
  if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
    context_->AddTrailingMetadata("retry-after-ms", absl::StrCat(retry_after_ms_));
  }
  Finish(status);
}

void GenerateCall::OnWriteDone(bool ok) {
  std::lock_guard<std::recursive_mutex> lock(state_->mu);
  write_in_flight_ = false;
  if (!ok) {
    // The client went away or the deadline passed mid-stream.
    cancelled_ = true;
    if (submitted_ok_) gateway_->Abort(submitted_.id);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the stream broke"));
    return;
  }
  if (final_written_) {
    FinishLocked(grpc::Status::OK);
    return;
  }
  WriteNextLocked();
}

void GenerateCall::OnCancel() {
  std::lock_guard<std::recursive_mutex> lock(state_->mu);
  cancelled_ = true;
  if (submitted_ok_ && !stream_->finished_seen()) gateway_->Abort(submitted_.id);
  if (!write_in_flight_) {
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the request was cancelled"));
  }
}

void GenerateCall::OnDone() {
  {
    std::lock_guard<std::recursive_mutex> lock(state_->mu);
    state_->call = nullptr;
  }
  if (stream_) stream_->Detach();
  if (submitted_ok_) gateway_->Forget(submitted_.id);
  if (telemetry_ != nullptr) {
    RequestRecord& r = *record_;
    r.num_chunks = num_chunks_sent_ + (final_written_ ? 1 : 0);
    if (!final_noted_) {
      // Cancelled or broken before the engine's final output: what the client got.
      r.completion_tokens = r.generated_tokens = sent_tokens_;
      if (submitted_ok_) r.finish_reason = batching::FinishReason::kAbort;
    }
    telemetry_->RequestFinished(std::move(r));
    telemetry_->StreamClosed(ApiKind::kNative, ServingMetrics::kRpcGenerate);
  }
  delete this;
}

}  // namespace moe::serving
