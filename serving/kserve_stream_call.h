// KServeStreamCall: the bidirectional reactor of ModelStreamInfer (Triton's decoupled streaming).
// Every request read from the stream becomes its own engine request with its own RequestStream;
// their responses share the call's single write in flight: requests with output ready queue up
// round-robin, and tokens produced while a write is in flight coalesce into their next response.
//
// Wire rules (what tritonclient / perf_analyzer / genai-perf rely on):
// - every response echoes the request's `id` and carries the bool parameter
//   `triton_final_response` (false on intermediate responses, true on the last one);
// - with the request parameter `triton_enable_empty_final_response` = true, a request that ends
//   with nothing new to send gets a response without outputs as its final one; otherwise the
//   final flag rides on the last data response (zero-length outputs if nothing new remains);
// - a failing request gets a response with `error_message` (and its id, final = true) and the
//   stream stays open, unless the client sent the header `triton_grpc_error: true`: then the call
//   ends with the gRPC status and every other request of the stream is aborted;
// - a request with `stop` = true ends the in-flight requests with the same id on this stream;
// - cancel, deadline or a broken stream abort every request of the stream; after the client
//   half-closes, the call ends OK once every request has sent its final response.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <grpcpp/grpcpp.h>

#include "inference/grpc_service.grpc.pb.h"
#include "serving/kserve_model.h"
#include "serving/request_gateway.h"
#include "serving/request_log_record.h"
#include "serving/request_stream.h"

namespace moe::serving {

class Telemetry;

class KServeStreamCall final : public grpc::ServerBidiReactor<inference::ModelInferRequest,
                                                              inference::ModelStreamInferResponse> {
 public:
  KServeStreamCall(grpc::CallbackServerContext* context, const KServeModelSet* models,
                   RequestGateway* gateway);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Shared with the engine thread's wake-up callbacks; `call` is cleared in OnDone.
  struct State {
    std::recursive_mutex mu;
    KServeStreamCall* call = nullptr;
  };
  // One request of the stream, from its submission to its final response.
  struct Entry {
    std::string client_id;
    std::string model_name;
    const KServeModel* model = nullptr;
    bool empty_final = false;
    std::shared_ptr<RequestStream> stream;
    std::unique_ptr<KServeResponder> responder;
    SubmittedRequest submitted;
    // Observability (null when no telemetry is attached).
    std::unique_ptr<RequestRecord> record;
    int responses = 0;  // responses carrying its output so far
    bool final_noted = false;
  };

  void HandleRequestLocked(const inference::ModelInferRequest& request);
  // A request failed before or while running: an error response, or the end of the call.
  void FailRequestLocked(const std::string& id, const std::string& model_name,
                         const Status& status);
  void QueueEmptyFinalLocked(const std::string& id, const std::string& model_name);
  void OnReadyLocked(uint64_t key);
  void PumpLocked();
  void WriteLocked(inference::ModelStreamInferResponse response);
  void RemoveEntryLocked(uint64_t key, bool abort);
  // Aborts every request and ends the call with `status` (after the write in flight).
  void FailCallLocked(const grpc::Status& status);
  void MaybeFinishLocked();
  void FinishLocked(const grpc::Status& status);
  // A request_finished record for a request read from the stream (null without telemetry).
  std::unique_ptr<RequestRecord> NewRecordLocked(const inference::ModelInferRequest& request);
  // Hands a record that ended with `status` to the telemetry.
  void EmitRecordLocked(std::unique_ptr<RequestRecord> record, const Status& status);

  grpc::CallbackServerContext* context_;
  const KServeModelSet* models_;
  RequestGateway* gateway_;
  std::shared_ptr<State> state_;
  std::shared_ptr<Telemetry> telemetry_;
  bool grpc_errors_ = false;  // client header triton_grpc_error: true

  // Guarded by state_->mu.
  inference::ModelInferRequest request_;                    // the read in flight
  inference::ModelStreamInferResponse response_;            // the write in flight
  std::deque<inference::ModelStreamInferResponse> queued_;  // errors and empty finals
  std::map<uint64_t, Entry> entries_;
  std::deque<uint64_t> ready_;  // entries whose RequestStream is busy, round-robin
  uint64_t next_key_ = 1;
  bool write_in_flight_ = false;
  bool reads_done_ = false;
  bool finish_called_ = false;
  std::optional<grpc::Status> finish_after_write_;
};

}  // namespace moe::serving
