// GenerateCall: the server-streaming reactor of MoeServe.Generate. It validates and submits the
// request in its constructor, then writes the engine's outputs as they arrive: one write in
// flight, tokens coalescing meanwhile, the next write started from OnWriteDone or by the engine
// thread's wake-up. Cancellation, deadline or a broken connection abort the engine request.
#pragma once

#include <memory>
#include <mutex>
#include <optional>

#include <grpcpp/grpcpp.h>

#include "moeserve/v1/moeserve.grpc.pb.h"
#include "serving/request_gateway.h"
#include "serving/request_log_record.h"
#include "serving/request_stream.h"
#include "serving/text_stream.h"

namespace moe::serving {

class Telemetry;

class GenerateCall final : public grpc::ServerWriteReactor<moeserve::v1::GenerateResponse> {
 public:
  GenerateCall(grpc::CallbackServerContext* context, const moeserve::v1::GenerateRequest* request,
               RequestGateway* gateway, int64_t retry_after_ms);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Shared with the engine thread's wake-up callback; `call` is cleared in OnDone.
  struct State {
    std::recursive_mutex mu;
    GenerateCall* call = nullptr;
  };

  void WriteNextLocked();
  void FinishLocked(const grpc::Status& status);
  // Builds the next message from `batch`; false when there is nothing to write yet.
  bool BuildMessage(StreamBatch& batch);

  grpc::CallbackServerContext* context_;
  RequestGateway* gateway_;
  int64_t retry_after_ms_;
  std::shared_ptr<State> state_;
  std::shared_ptr<RequestStream> stream_;
  SubmittedRequest submitted_;
  bool submitted_ok_ = false;
  bool streaming_ = false;
  bool return_perf_ = false;
  bool want_logprobs_ = false;
  std::optional<TextStream> text_;
  // Writer state (guarded by state_->mu).
  moeserve::v1::GenerateResponse message_;
  bool write_in_flight_ = false;
  bool final_written_ = false;
  bool finish_called_ = false;
  bool cancelled_ = false;
  bool stopped_by_text_ = false;
  int sent_tokens_ = 0;
  int num_chunks_sent_ = 0;
  std::vector<int32_t> unary_tokens_;
  std::vector<scheduler::SampleOutput> unary_logprobs_;
  std::string unary_text_;
  // Observability (null when no telemetry is attached): the request_finished record, filled as
  // the call goes and handed over in OnDone.
  std::shared_ptr<Telemetry> telemetry_;
  std::unique_ptr<RequestRecord> record_;
  bool final_noted_ = false;
};

}  // namespace moe::serving
