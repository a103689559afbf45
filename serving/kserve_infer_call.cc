#include "serving/kserve_infer_call.h"

#include "absl/strings/str_cat.h"
#include "serving/grpc_status.h"

namespace moe::serving {

KServeInferCall::KServeInferCall(grpc::CallbackServerContext* context,
                                 const inference::ModelInferRequest* request,
                                 inference::ModelInferResponse* response,
                                 const KServeModelSet* models, RequestGateway* gateway,
                                 int64_t retry_after_ms)
    : gateway_(gateway), response_(response), state_(std::make_shared<State>()) {
  std::lock_guard<std::recursive_mutex> lock(state_->mu);
  state_->call = this;
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
}

void KServeInferCall::TakeOutputsLocked() {
  StreamBatch batch;
  while (!finish_called_ && stream_->TakeOrIdle(&batch)) {
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
  delete this;
}

}  // namespace moe::serving
