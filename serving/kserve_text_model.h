// The KServe text model (TensorRT-LLM `ensemble` naming, plus the Triton vLLM-backend names):
// text_input BYTES and sampling tensors in, text_output BYTES out (the new text in each streamed
// response). Needs the model's tokenizer; without one every request gets FAILED_PRECONDITION and
// ModelReady reports false.
//
// Inputs: text_input (required), max_tokens, stream, exclude_input_in_output, end_id, pad_id,
// temperature, top_k, top_p, repetition_penalty, presence_penalty, frequency_penalty,
// length_penalty, min_tokens / min_length, seed / random_seed, stop_words, bad_words (only empty),
// beam_width (only 1), num_return_sequences (only 1), return_log_probs, return_perf_metrics,
// return_context_logits / return_generation_logits (only false), sampling_parameters (vLLM JSON),
// return_finish_reason, return_num_input_tokens, return_num_output_tokens.
// Outputs: text_output, cum_log_probs, output_log_probs, finish_reason, num_input_tokens,
// num_output_tokens, perf times, kv_cache_reused_blocks, batch_index, sequence_index.
//
// Sampling defaults: greedy unless a temperature / top_k / top_p tensor is given (TRT-LLM); with
// sampling_parameters, vLLM's defaults (temperature 1) and its keys, tensors taking precedence.
#pragma once

#include "serving/kserve_model.h"

namespace moe::serving {

class KServeTextModel final : public KServeModel {
 public:
  KServeTextModel(std::string name, RequestGateway* gateway);

  Status Available() const override;
  std::unique_ptr<KServeResponder> NewResponder(const KServeRequest& request,
                                                const SubmittedRequest& submitted) const override;

 protected:
  StatusOr<KServeRequest> Convert(const InputSet& inputs) const override;
};

// Applies a vLLM `sampling_parameters` JSON object (numbers may be given as strings, as the
// Triton vLLM backend accepts). Errors name "sampling_parameters.<key>".
Status ApplySamplingParametersJson(std::string_view json, KServeRequest* request);

}  // namespace moe::serving
