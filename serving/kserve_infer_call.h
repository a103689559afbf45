// KServeInferCall: the unary reactor of ModelInfer. It validates and submits the request in its
// constructor and finishes once the engine's final output arrives, with the whole output in one
// response. Streaming requests (stream / streaming = true) and TRT-LLM `stop` requests need
// ModelStreamInfer and get INVALID_ARGUMENT. Cancellation, deadline or a broken connection abort
// the engine request.
#pragma once

#include <memory>
#include <mutex>

#include <grpcpp/grpcpp.h>

#include "inference/grpc_service.grpc.pb.h"
#include "serving/kserve_model.h"
#include "serving/request_gateway.h"
#include "serving/request_log_record.h"
#include "serving/request_stream.h"

namespace moe::serving {

class Telemetry;

class KServeInferCall final : public grpc::ServerUnaryReactor {
 public:
  KServeInferCall(grpc::CallbackServerContext* context, const inference::ModelInferRequest* request,
                  inference::ModelInferResponse* response, const KServeModelSet* models,
                  RequestGateway* gateway, int64_t retry_after_ms);

  void OnCancel() override;
  void OnDone() override;

 private:
  // Shared with the engine thread's wake-up callback; `call` is cleared in OnDone.
  struct State {
    std::recursive_mutex mu;
    KServeInferCall* call = nullptr;
  };

  void TakeOutputsLocked();
  void FinishLocked(const grpc::Status& status);

  RequestGateway* gateway_;
  inference::ModelInferResponse* response_;
  std::shared_ptr<State> state_;
  const KServeModel* model_ = nullptr;
  std::shared_ptr<RequestStream> stream_;
  std::unique_ptr<KServeResponder> responder_;
  SubmittedRequest submitted_;
  bool submitted_ok_ = false;
  bool finish_called_ = false;
  // Observability (null when no telemetry is attached), handed over in OnDone.
  std::shared_ptr<Telemetry> telemetry_;
  std::unique_ptr<RequestRecord> record_;
  bool final_noted_ = false;
};

}  // namespace moe::serving
