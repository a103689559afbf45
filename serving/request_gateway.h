// RequestGateway: the one door from the RPC surfaces (native and KServe) into the engine.
// It turns an API request (token ids or text) into an engine Request, validates it (errors name
// the API field), refuses new work while draining, keeps the client-id -> engine-id map for
// Abort, and exposes model facts and load for the info RPCs.
//
// Threads: called from gRPC callback threads; everything here is thread-safe and non-blocking
// (submitting only enqueues to the engine thread).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "batching/sampling_params.h"
#include "engine/engine_loop.h"
#include "engine/request_output.h"
#include "model/model_config.h"
#include "model/tokenizer.h"

namespace moe::serving {

class Telemetry;

// Facts about the served model, for GetModelInfo / ModelMetadata.
struct ModelInfo {
  std::string served_model_name;
  model::ModelConfig config;
  int max_context = 0;
  int expert_clusters = 0;
  std::string weights_dtype = "bfloat16";
  std::string backend;
  int max_num_seqs = 0;
  int max_num_batched_tokens = 0;
  int num_kv_blocks = 0;
  int kv_block_size = 0;
};

// An API-level generation request.
struct GenerationRequest {
  std::string external_id;          // empty = assign one
  std::vector<int64_t> input_ids;   // raw from the wire; validated against the vocabulary
  std::optional<std::string> text;  // instead of input_ids, when the model has a tokenizer
  batching::SamplingParams sampling;
  int32_t priority = 0;
};

struct SubmittedRequest {
  batching::RequestId id = 0;
  std::string external_id;
  int prompt_tokens = 0;
};

class RequestGateway {
 public:
  // `tokenizer` may be null (token ids only); it must outlive the gateway.
  RequestGateway(engine::EngineLoop* loop, ModelInfo info, const model::Tokenizer* tokenizer);

  // Validates and queues. INVALID_ARGUMENT names the field; RESOURCE_EXHAUSTED when overloaded;
  // UNAVAILABLE while draining or not ready. On error nothing is queued and `sink` is not called.
  StatusOr<SubmittedRequest> Submit(GenerationRequest request,
                                    std::shared_ptr<engine::OutputSink> sink);
  // Aborts by engine id (client cancel); takes effect within one engine step.
  void Abort(batching::RequestId id);
  // Aborts by client request id; returns how many were in flight.
  int AbortByExternalId(const std::string& external_id);
  // Ends a request as stopped by a stop string the caller matched in the text.
  void StopMatched(batching::RequestId id, const std::string& stop);
  // The caller saw the final output of `id`: forget its client id.
  void Forget(batching::RequestId id);

  void SetReady(bool ready) { ready_.store(ready); }
  bool ready() const { return ready_.load(); }
  void SetDraining() { draining_.store(true); }
  bool draining() const { return draining_.load(); }

  // Request logs and metrics, when enabled; set once before the server starts.
  void SetTelemetry(std::shared_ptr<Telemetry> telemetry) { telemetry_ = std::move(telemetry); }
  const std::shared_ptr<Telemetry>& telemetry() const { return telemetry_; }

  const ModelInfo& info() const { return info_; }
  const model::Tokenizer* tokenizer() const { return tokenizer_; }
  engine::EngineStats Stats() const { return loop_->Stats(); }
  int active_requests() const { return loop_->num_unfinished(); }
  engine::EngineLoop* loop() const { return loop_; }

 private:
  engine::EngineLoop* loop_;
  ModelInfo info_;
  const model::Tokenizer* tokenizer_;
  std::shared_ptr<Telemetry> telemetry_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> draining_{false};
  std::mutex mu_;
  std::unordered_multimap<std::string, batching::RequestId> by_external_id_;
  std::unordered_map<batching::RequestId, std::string> external_of_;
};

}  // namespace moe::serving
