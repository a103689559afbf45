// KServeModel: one model name of the KServe v2 / Triton surface, described by tables of input and
// output tensors. The base class answers ModelMetadata / ModelConfig from the tables and checks a
// ModelInferRequest against them (unknown tensor, wrong datatype or shape, missing required input:
// INVALID_ARGUMENT naming the tensor); a subclass turns the checked tensors into a gateway request
// (KServeRequest) and builds the response tensors from the engine's outputs (KServeResponder).
//
// Both models report max_batch_size 1 with dims that exclude the batch dimension; requests may
// send each tensor with or without the leading batch dimension of 1. Responses always carry it.
//
// Threads: models are immutable after construction and shared by every call; a responder
// belongs to one request and is used under its call's lock.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "inference/grpc_service.pb.h"
#include "serving/kserve_tensor.h"
#include "serving/request_gateway.h"
#include "serving/request_stream.h"

namespace moe::serving {

struct TensorSpec {
  std::string name;
  KsType type = KsType::kInvalid;
  std::vector<int64_t> dims;  // without the batch dimension; -1 = any size
  bool optional = false;      // inputs only
};

// What one ModelInferRequest asks for.
struct KServeRequest {
  GenerationRequest generation;
  bool streaming = false;
  // TRT-LLM `stop`: end the in-flight request with the same id on this stream; nothing else.
  bool stop = false;
  // false (TRT-LLM's default): the prompt is part of the first / unary output.
  bool exclude_input = false;
  std::string prompt_text;          // text model: echoed unless exclude_input
  std::vector<int32_t> prompt_ids;  // token model: echoed in unary output_ids unless exclude_input
  bool return_log_probs = false;
  bool return_perf_metrics = false;
  bool return_finish_reason = false;
  bool return_num_input_tokens = false;
  bool return_num_output_tokens = false;
  std::vector<std::string> requested_outputs;  // empty = the model's defaults
  // Token model: stop sequences of two or more ids, matched on the serving side (single ids go
  // to the engine as stop_token_ids).
  std::vector<std::vector<int32_t>> stop_sequences;
};

// Turns one request's engine outputs into response tensors, streaming or all at once.
class KServeResponder {
 public:
  struct Outcome {
    bool send = false;         // a response is ready in `response`
    bool has_content = false;  // it carries new output (false: a final message with nothing new)
  };
  virtual ~KServeResponder() = default;
  // Consumes `batch`. Streaming: a response for every batch with new output, and for the final
  // batch. Unary: nothing until the final batch, then the whole output.
  virtual Outcome Build(StreamBatch& batch, inference::ModelInferResponse* response) = 0;
};

// The checked inputs of one request, by name.
class InputSet {
 public:
  explicit InputSet(std::map<std::string, InputTensor, std::less<>> tensors)
      : tensors_(std::move(tensors)) {}
  const InputTensor* Find(std::string_view name) const;
  // Scalars ([1]-shaped inputs); nullopt when absent.
  std::optional<bool> Bool(std::string_view name) const;
  std::optional<int64_t> Int(std::string_view name) const;
  std::optional<uint64_t> Uint64(std::string_view name) const;
  std::optional<double> Float(std::string_view name) const;
  // The first of `names` that is present (aliases such as min_tokens / min_length).
  std::optional<int64_t> IntOf(std::initializer_list<std::string_view> names) const;
  std::optional<uint64_t> Uint64Of(std::initializer_list<std::string_view> names) const;

 private:
  std::map<std::string, InputTensor, std::less<>> tensors_;
};

class KServeModel {
 public:
  KServeModel(std::string name, RequestGateway* gateway);
  virtual ~KServeModel() = default;

  const std::string& name() const { return name_; }
  // Whether the model can serve requests (the text model needs a tokenizer).
  virtual Status Available() const { return OkStatus(); }

  void FillMetadata(inference::ModelMetadataResponse* response) const;
  void FillConfig(inference::ModelConfig* config) const;

  // Validates `request` against the tensor tables and converts it.
  StatusOr<KServeRequest> Parse(const inference::ModelInferRequest& request) const;
  // A responder for a request the gateway accepted (`request` still holds the generation request
  // it was submitted with).
  virtual std::unique_ptr<KServeResponder> NewResponder(
      const KServeRequest& request, const SubmittedRequest& submitted) const = 0;
  // Gateway / engine errors name native fields ("sampling.max_tokens"); this rewrites them to
  // this model's tensor names.
  Status RenameFields(const Status& status) const;

  const std::vector<TensorSpec>& inputs() const { return inputs_; }
  const std::vector<TensorSpec>& outputs() const { return outputs_; }
  // The BOOL input that asks for streaming ("stream" / "streaming").
  const std::string& stream_input() const { return stream_input_; }

 protected:
  virtual StatusOr<KServeRequest> Convert(const InputSet& inputs) const = 0;
  // A TRT-LLM stop request (stop = true): its required inputs are not checked.
  bool IsStopRequest(const InputSet& inputs) const;

  std::string name_;
  RequestGateway* gateway_;
  std::vector<TensorSpec> inputs_;
  std::vector<TensorSpec> outputs_;
  std::string stream_input_;
  // native field name ("sampling.max_tokens") -> tensor name, for RenameFields.
  std::vector<std::pair<std::string, std::string>> field_names_;
};

// The models served under their names (immutable after construction).
class KServeModelSet {
 public:
  void Add(std::unique_ptr<KServeModel> model) { models_.push_back(std::move(model)); }
  // NOT_FOUND for an unknown name, or a version other than "" / "1".
  StatusOr<const KServeModel*> Find(std::string_view name, std::string_view version) const;

 private:
  std::vector<std::unique_ptr<KServeModel>> models_;
};

// Sampling inputs both models share, by the tensor names given; errors name the tensor.
struct SamplingTensorNames {
  std::initializer_list<std::string_view> max_tokens;
  std::initializer_list<std::string_view> top_k;
  std::initializer_list<std::string_view> top_p;
  std::initializer_list<std::string_view> seed;
  std::initializer_list<std::string_view> min_tokens;
  std::initializer_list<std::string_view> length_penalty;
};
// `greedy_by_default`: without temperature / top-k / top-p inputs the request is greedy (TRT-LLM);
// otherwise the sampling defaults already in `request` stay.
Status ApplySamplingTensors(const InputSet& in, const SamplingTensorNames& names,
                            bool greedy_by_default, KServeRequest* request);

// The outputs both models may add besides their main one, and the counters they need.
class ExtraOutputs {
 public:
  // `main_outputs`: the model's always-sent outputs (when the request names none).
  ExtraOutputs(const KServeRequest& request, const SubmittedRequest& submitted, int kv_block_size,
               std::vector<std::string> main_outputs);
  // Whether output `name` goes into responses.
  bool Wanted(std::string_view name) const;
  // Adds the extra outputs for a response carrying `num_tokens` tokens with `logprobs`. Perf
  // outputs only when `batch.finished`; finish_reason is "" until then.
  void Add(std::span<const scheduler::SampleOutput> logprobs, int num_tokens,
           const StreamBatch& batch, const std::string& finish_reason,
           inference::ModelInferResponse* response);

 private:
  std::vector<std::string> requested_;
  std::vector<std::string> main_;
  bool log_probs_;
  bool perf_;
  bool finish_reason_;
  bool num_input_;
  bool num_output_;
  int prompt_tokens_;
  int kv_block_size_;
  double cum_logprob_ = 0.0;
};

// "stop" / "length" / "abort" (or "" while unfinished).
std::string FinishReasonOf(const StreamBatch& batch, bool stopped_by_serving);

}  // namespace moe::serving
