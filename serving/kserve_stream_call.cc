#include "serving/kserve_stream_call.h"

#include "serving/grpc_status.h"
#include "serving/metrics_telemetry.h"
#include "serving/request_log_context.h"

namespace moe::serving {

namespace {

constexpr char kFinalParam[] = "triton_final_response";
constexpr char kEmptyFinalParam[] = "triton_enable_empty_final_response";

bool BoolParameter(const google::protobuf::Map<std::string, inference::InferParameter>& params,
                   const char* name) {
  auto it = params.find(name);
  if (it == params.end()) return false;
  const inference::InferParameter& p = it->second;
  switch (p.parameter_choice_case()) {
    case inference::InferParameter::kBoolParam:
      return p.bool_param();
    case inference::InferParameter::kStringParam:
      return p.string_param() == "true";
    case inference::InferParameter::kInt64Param:
      return p.int64_param() != 0;
    default:
      return false;
  }
}

void SetHeader(const std::string& id, const std::string& model_name, bool final,
               inference::ModelInferResponse* r) {
  r->set_model_name(model_name);
  r->set_model_version("1");
  r->set_id(id);
  (*r->mutable_parameters())[kFinalParam].set_bool_param(final);
}

}  // namespace

KServeStreamCall::KServeStreamCall(grpc::CallbackServerContext* context,
                                   const KServeModelSet* models, RequestGateway* gateway)
    : context_(context), models_(models), gateway_(gateway), state_(std::make_shared<State>()) {
  std::lock_guard<std::recursive_mutex> lock(state_->mu);
  state_->call = this;
  telemetry_ = Telemetry::Of(*gateway);
  if (telemetry_ != nullptr) {
    telemetry_->StreamOpened(ApiKind::kKServeStream, ServingMetrics::kRpcModelStreamInfer);
  }
  for (const auto& [key, value] : context->client_metadata()) {
    if (key == "triton_grpc_error" && value == "true") grpc_errors_ = true;
  }
  StartRead(&request_);
}

void KServeStreamCall::OnReadDone(bool ok) {
  std::lock_guard<std::recursive_mutex> lock(state_->mu);
  if (!ok) {
    // The client half-closed (or the call broke): finish once every request has ended.
    reads_done_ = true;
    MaybeFinishLocked();
    return;
  }
  if (finish_called_ || finish_after_write_.has_value()) return;
  HandleRequestLocked(request_);
  if (!finish_called_ && !finish_after_write_.has_value()) StartRead(&request_);
}

std::unique_ptr<RequestRecord> KServeStreamCall::NewRecordLocked(
    const inference::ModelInferRequest& request) {
  if (telemetry_ == nullptr) return nullptr;
  auto record = std::make_unique<RequestRecord>();
  record->api = ApiKind::kKServeStream;
  NoteCallContext(*context_, record.get());
  record->request_id = request.id();
  record->model = request.model_name();
  record->kv_block_size = gateway_->info().kv_block_size;
  return record;
}

void KServeStreamCall::EmitRecordLocked(std::unique_ptr<RequestRecord> record,
                                        const Status& status) {
  if (record == nullptr) return;
  NoteCallStatus(ToGrpcStatus(status), record.get());
  telemetry_->RequestFinished(std::move(*record));
}

void KServeStreamCall::HandleRequestLocked(const inference::ModelInferRequest& request) {
  std::unique_ptr<RequestRecord> record = NewRecordLocked(request);
  StatusOr<const KServeModel*> model = models_->Find(request.model_name(), request.model_version());
  if (!model.ok()) {
    EmitRecordLocked(std::move(record), model.status());
    FailRequestLocked(request.id(), request.model_name(), model.status());
    return;
  }
  StatusOr<KServeRequest> parsed = (*model)->Parse(request);
  if (!parsed.ok()) {
    EmitRecordLocked(std::move(record), parsed.status());
    FailRequestLocked(request.id(), request.model_name(), parsed.status());
    return;
  }
  if (record != nullptr) {
    record->NoteSampling(parsed->generation.sampling);
    record->priority = parsed->generation.priority;
    record->stream = parsed->streaming;
    if (telemetry_->log_prompts()) {
      if (!parsed->prompt_text.empty()) record->prompt_text = parsed->prompt_text;
      record->prompt_ids = parsed->generation.input_ids;
    }
  }
  const bool empty_final = BoolParameter(request.parameters(), kEmptyFinalParam);
  if (parsed->stop) {
    // TRT-LLM: end the requests with this id early; their final responses follow as usual.
    for (auto& [key, entry] : entries_) {
      if (entry.client_id == request.id() && !entry.stream->finished_seen()) {
        gateway_->Abort(entry.submitted.id);
      }
    }
    // The stop request itself produces no output: only a final flag when asked for one.
    if (empty_final) QueueEmptyFinalLocked(request.id(), request.model_name());
    PumpLocked();
    return;
  }
  const uint64_t key = next_key_++;
  std::weak_ptr<State> weak = state_;
  auto stream = std::make_shared<RequestStream>([weak, key] {
    if (auto state = weak.lock()) {
      std::lock_guard<std::recursive_mutex> lock(state->mu);
      if (state->call != nullptr) state->call->OnReadyLocked(key);
    }
  });
  StatusOr<SubmittedRequest> submitted = gateway_->Submit(parsed->generation, stream);
  if (!submitted.ok()) {
    const Status status = (*model)->RenameFields(submitted.status());
    EmitRecordLocked(std::move(record), status);
    FailRequestLocked(request.id(), request.model_name(), status);
    return;
  }
  if (record != nullptr) {
    record->engine_id = submitted->id;
    record->request_id = submitted->external_id;
    record->prompt_tokens = submitted->prompt_tokens;
  }
  Entry entry;
  entry.client_id = request.id();
  entry.model_name = request.model_name();
  entry.model = *model;
  entry.empty_final = empty_final;
  entry.stream = std::move(stream);
  entry.responder = (*model)->NewResponder(*parsed, *submitted);
  entry.submitted = *submitted;
  entry.record = std::move(record);
  entries_.emplace(key, std::move(entry));
}

void KServeStreamCall::FailRequestLocked(const std::string& id, const std::string& model_name,
                                         const Status& status) {
  if (grpc_errors_) {
    FailCallLocked(ToGrpcStatus(status));
    return;
  }
  inference::ModelStreamInferResponse response;
  response.set_error_message(std::string(status.message()));
  SetHeader(id, model_name, /*final=*/true, response.mutable_infer_response());
  queued_.push_back(std::move(response));
  PumpLocked();
}

void KServeStreamCall::QueueEmptyFinalLocked(const std::string& id, const std::string& model_name) {
  inference::ModelStreamInferResponse response;
  SetHeader(id, model_name, /*final=*/true, response.mutable_infer_response());
  queued_.push_back(std::move(response));
}

void KServeStreamCall::OnReadyLocked(uint64_t key) {
  ready_.push_back(key);
  PumpLocked();
}

void KServeStreamCall::PumpLocked() {
  if (write_in_flight_ || finish_called_ || finish_after_write_.has_value()) return;
  if (!queued_.empty()) {
    inference::ModelStreamInferResponse next = std::move(queued_.front());
    queued_.pop_front();
    WriteLocked(std::move(next));
    return;
  }
  while (!ready_.empty()) {
    const uint64_t key = ready_.front();
    ready_.pop_front();
    auto it = entries_.find(key);
    if (it == entries_.end()) continue;
    Entry& entry = it->second;
    StreamBatch batch;
    // Nothing pending: the stream goes idle and its next output wakes us again.
    if (!entry.stream->TakeOrIdle(&batch)) continue;
    if (batch.finished && entry.record != nullptr) {
      entry.record->NoteFinal(batch.final);
      entry.final_noted = true;
    }
    if (batch.finished && !batch.final.status.ok()) {
      const Status status = entry.model->RenameFields(batch.final.status);
      if (entry.record != nullptr) NoteCallStatus(ToGrpcStatus(status), entry.record.get());
      const std::string id = entry.client_id;
      const std::string model_name = entry.model_name;
      RemoveEntryLocked(key, /*abort=*/false);
      FailRequestLocked(id, model_name, status);
      return;
    }
    inference::ModelStreamInferResponse response;
    inference::ModelInferResponse* r = response.mutable_infer_response();
    const KServeResponder::Outcome outcome = entry.responder->Build(batch, r);
    if (!outcome.send) {
      ready_.push_back(key);  // take again: more may have arrived, or it goes idle
      continue;
    }
    SetHeader(entry.client_id, entry.model_name, batch.finished, r);
    ++entry.responses;
    if (batch.finished) {
      if (!outcome.has_content && entry.empty_final) {
        r->clear_outputs();
        r->clear_raw_output_contents();
      }
      RemoveEntryLocked(key, /*abort=*/false);
    } else {
      ready_.push_back(key);
    }
    WriteLocked(std::move(response));
    return;
  }
  MaybeFinishLocked();
}

void KServeStreamCall::WriteLocked(inference::ModelStreamInferResponse response) {
  response_ = std::move(response);
  write_in_flight_ = true;
  StartWrite(&response_);
}

void KServeStreamCall::RemoveEntryLocked(uint64_t key, bool abort) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  Entry& entry = it->second;
  if (abort && !entry.stream->finished_seen()) gateway_->Abort(entry.submitted.id);
  entry.stream->Detach();
  gateway_->Forget(entry.submitted.id);
  if (entry.record != nullptr) {
    RequestRecord& r = *entry.record;
    r.num_chunks = entry.responses;
    if (!entry.final_noted) {
      r.grpc_code = static_cast<int>(grpc::StatusCode::CANCELLED);
      r.error_msg = "the stream ended before the request finished";
      r.finish_reason = batching::FinishReason::kAbort;
    }
    telemetry_->RequestFinished(std::move(r));
  }
  entries_.erase(it);
}

void KServeStreamCall::FailCallLocked(const grpc::Status& status) {
  while (!entries_.empty()) RemoveEntryLocked(entries_.begin()->first, /*abort=*/true);
  ready_.clear();
  queued_.clear();
  if (write_in_flight_) {
    if (!finish_after_write_.has_value()) finish_after_write_ = status;
    return;
  }
  FinishLocked(status);
}

void KServeStreamCall::MaybeFinishLocked() {
  if (reads_done_ && entries_.empty() && queued_.empty() && !write_in_flight_) {
    FinishLocked(grpc::Status::OK);
  }
}

void KServeStreamCall::FinishLocked(const grpc::Status& status) {
  if (finish_called_) return;
  finish_called_ = true;
  Finish(status);
}

void KServeStreamCall::OnWriteDone(bool ok) {
  std::lock_guard<std::recursive_mutex> lock(state_->mu);
  write_in_flight_ = false;
  if (!ok) {
    FailCallLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the stream broke"));
    return;
  }
  if (finish_after_write_.has_value()) {
    FinishLocked(*finish_after_write_);
    return;
  }
  PumpLocked();
}

void KServeStreamCall::OnCancel() {
  std::lock_guard<std::recursive_mutex> lock(state_->mu);
  FailCallLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the stream was cancelled"));
}

void KServeStreamCall::OnDone() {
  {
    std::lock_guard<std::recursive_mutex> lock(state_->mu);
    state_->call = nullptr;
    while (!entries_.empty()) RemoveEntryLocked(entries_.begin()->first, /*abort=*/true);
  }
  if (telemetry_ != nullptr) {
    telemetry_->StreamClosed(ApiKind::kKServeStream, ServingMetrics::kRpcModelStreamInfer);
  }
  delete this;
}

}  // namespace moe::serving
