#include "serving/kserve_infer_call.h"

#include "absl/strings/str_cat.h"
#include "serving/grpc_status.h"
#include "serving/metrics_telemetry.h"
#include "serving/request_log_context.h"

namespace moe::serving {

KServeInferCall::KServeInferCall(grpc::CallbackServerContext* context,
                                 const inference::ModelInferRequest* request,
                                 inference::ModelInferResponse* response,
                                 const KServeModelSet* models, RequestGateway* gateway,
                                 int64_t retry_after_ms)
    : gateway_(gateway), response_(response), state_(std::make_shared<State>()) {
  std::lock_guard<std::recursive_mutex> lock(state_->mu);
  state_->call = this;
  telemetry_ = Telemetry::Of(*gateway);
  if (telemetry_ != nullptr) {
    record_ = std::make_unique<RequestRecord>();
    record_->api = ApiKind::kKServeUnary;
    NoteCallContext(*context, record_.get());
    record_->request_id = request->id();
    record_->model = request->model_name();
    record_->kv_block_size = gateway->info().kv_block_size;
    telemetry_->StreamOpened(ApiKind::kKServeUnary, ServingMetrics::kRpcModelInfer);
  }
  StatusOr<const KServeModel*> model =
      models->Find(request->model_name(), request->model_version());
  if (!model.ok()) {
    FinishLocked(ToGrpcStatus(model.status()));
    return;
  }
  model_ = *model;
  StatusOr<KServeRequest> parsed = model_->Parse(*request);
  if (!parsed.ok()) {
    FinishLocked(ToGrpcStatus(parsed.status()));
    return;
  }
  if (parsed->stop) {
    FinishLocked(ToGrpcStatus(InvalidArgument(
        "input 'stop': stopping a request needs ModelStreamInfer (send it on the same stream)")));
    return;
  }
  if (parsed->streaming) {
    FinishLocked(ToGrpcStatus(InvalidArgument(
        "input '", model_->stream_input(),
        "' = true: the model is decoupled; stream with ModelStreamInfer, or set it false for "
        "one response")));
    return;
  }
  if (record_ != nullptr) {
    record_->NoteSampling(parsed->generation.sampling);
    record_->priority = parsed->generation.priority;
    if (telemetry_->log_prompts()) {
      if (!parsed->prompt_text.empty()) record_->prompt_text = parsed->prompt_text;
      record_->prompt_ids = parsed->generation.input_ids;
    }
  }
  response_->set_model_name(request->model_name());
  response_->set_model_version("1");
  response_->set_id(request->id());
  std::weak_ptr<State> weak = state_;
  stream_ = std::make_shared<RequestStream>([weak] {
    if (auto state = weak.lock()) {
      std::lock_guard<std::recursive_mutex> lock(state->mu);
      if (state->call != nullptr) state->call->TakeOutputsLocked();
    }
  });
  StatusOr<SubmittedRequest> submitted = gateway->Submit(parsed->generation, stream_);
  if (!submitted.ok()) {
    if (submitted.status().code() == absl::StatusCode::kResourceExhausted) {
      context->AddTrailingMetadata("retry-after-ms", absl::StrCat(retry_after_ms));
    }
    FinishLocked(ToGrpcStatus(model_->RenameFields(submitted.status())));
    return;
  }
  submitted_ = *submitted;
  submitted_ok_ = true;
  responder_ = model_->NewResponder(*parsed, submitted_);
  if (record_ != nullptr) {
    record_->engine_id = submitted_.id;
    record_->request_id = submitted_.external_id;
    record_->prompt_tokens = submitted_.prompt_tokens;
  }
}

void KServeInferCall::TakeOutputsLocked() {
  StreamBatch batch;
  while (!finish_called_ && stream_->TakeOrIdle(&batch)) {
    if (batch.finished && record_ != nullptr) {
      record_->NoteFinal(batch.final);
      final_noted_ = true;
    }
    if (batch.finished && !batch.final.status.ok()) {
      FinishLocked(ToGrpcStatus(model_->RenameFields(batch.final.status)));
      return;
    }
    if (responder_->Build(batch, response_).send) {
      FinishLocked(grpc::Status::OK);
      return;
    }
    batch = StreamBatch{};
  }
}

void KServeInferCall::FinishLocked(const grpc::Status& status) {
  if (finish_called_) return;
  finish_called_ = true;
  if (record_ != nullptr) NoteCallStatus(status, record_.get());
  Finish(status);
}

void KServeInferCall::OnCancel() {
  std::lock_guard<std::recursive_mutex> lock(state_->mu);
  if (submitted_ok_ && !stream_->finished_seen()) gateway_->Abort(submitted_.id);
  FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the request was cancelled"));
}

void KServeInferCall::OnDone() {
  {
    std::lock_guard<std::recursive_mutex> lock(state_->mu);
    state_->call = nullptr;
  }
  if (stream_) stream_->Detach();
  if (submitted_ok_) gateway_->Forget(submitted_.id);
  if (telemetry_ != nullptr) {
    RequestRecord& r = *record_;
    r.num_chunks = final_noted_ && r.grpc_code == 0 ? 1 : 0;
    if (!final_noted_ && submitted_ok_) r.finish_reason = batching::FinishReason::kAbort;
    telemetry_->RequestFinished(std::move(r));
    telemetry_->StreamClosed(ApiKind::kKServeUnary, ServingMetrics::kRpcModelInfer);
  }
  delete this;
}

}  // namespace moe::serving
