// The KServe token model (TensorRT-LLM `tensorrt_llm` naming): token ids in, token ids out; no
// tokenizer needed.
//
// Inputs: input_ids INT32 (required), input_lengths (optional; truncates padded input_ids),
// request_output_len (required), streaming, end_id, pad_id, runtime_top_k, runtime_top_p,
// temperature, repetition_penalty, presence_penalty, frequency_penalty, len_penalty /
// length_penalty, min_tokens / min_length, seed / random_seed, stop_words_list, bad_words_list
// (only empty), exclude_input_in_output, stop, beam_width (only 1), num_return_sequences (only 1),
// return_log_probs, return_perf_metrics, return_context_logits / return_generation_logits (only
// false).
// Outputs: output_ids [1, 1, n] (streaming: the new ids; unary: the prompt and the generated ids
// unless exclude_input_in_output), sequence_length, cum_log_probs, output_log_probs, batch_index,
// sequence_index, perf times, kv_cache_reused_blocks.
//
// stop_words_list uses TRT-LLM's two-row form [2, K]: row 0 the concatenated ids of every stop
// sequence, row 1 their exclusive end offsets, padded with -1. Single-id sequences stop in the
// engine; longer ones are matched here. The output keeps the stop sequence.
#pragma once

#include "serving/kserve_model.h"

namespace moe::serving {

class KServeTokenModel final : public KServeModel {
 public:
  KServeTokenModel(std::string name, RequestGateway* gateway);

  std::unique_ptr<KServeResponder> NewResponder(const KServeRequest& request,
                                                const SubmittedRequest& submitted) const override;

 protected:
  StatusOr<KServeRequest> Convert(const InputSet& inputs) const override;
};

// Splits a TRT-LLM word list (`values` = row 0 then row 1, each `width` long) into sequences.
StatusOr<std::vector<std::vector<int32_t>>> ParseWordList(std::span<const int64_t> values,
                                                          int64_t width, std::string_view name);

}  // namespace moe::serving
