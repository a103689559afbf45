#include "serving/kserve_token_model.h"

#include <algorithm>

namespace moe::serving {

namespace {

const std::vector<std::string> kMainOutputs = {"output_ids", "sequence_length"};

std::vector<TensorSpec> TokenInputs() {
  const std::vector<int64_t> one = {1};
  return {
      {"input_ids", KsType::kInt32, {-1}, false},
      {"input_lengths", KsType::kInt32, one, true},
      {"request_output_len", KsType::kInt32, one, false},
      {"streaming", KsType::kBool, one, true},
      {"end_id", KsType::kInt32, one, true},
      {"pad_id", KsType::kInt32, one, true},
      {"runtime_top_k", KsType::kInt32, one, true},
      {"runtime_top_p", KsType::kFp32, one, true},
      {"temperature", KsType::kFp32, one, true},
      {"repetition_penalty", KsType::kFp32, one, true},
      {"presence_penalty", KsType::kFp32, one, true},
      {"frequency_penalty", KsType::kFp32, one, true},
      {"len_penalty", KsType::kFp32, one, true},
      {"length_penalty", KsType::kFp32, one, true},
      {"min_tokens", KsType::kInt32, one, true},
      {"min_length", KsType::kInt32, one, true},
      {"seed", KsType::kUint64, one, true},
      {"random_seed", KsType::kUint64, one, true},
      {"stop_words_list", KsType::kInt32, {2, -1}, true},
      {"bad_words_list", KsType::kInt32, {2, -1}, true},
      {"exclude_input_in_output", KsType::kBool, one, true},
      {"stop", KsType::kBool, one, true},
      {"beam_width", KsType::kInt32, one, true},
      {"num_return_sequences", KsType::kInt32, one, true},
      {"return_log_probs", KsType::kBool, one, true},
      {"return_perf_metrics", KsType::kBool, one, true},
      {"return_context_logits", KsType::kBool, one, true},
      {"return_generation_logits", KsType::kBool, one, true},
  };
}

std::vector<TensorSpec> TokenOutputs() {
  const std::vector<int64_t> one = {1};
  return {
      {"output_ids", KsType::kInt32, {-1, -1}},
      {"sequence_length", KsType::kInt32, {-1}},
      {"cum_log_probs", KsType::kFp32, {-1}},
      {"output_log_probs", KsType::kFp32, {-1, -1}},
      {"batch_index", KsType::kInt32, one},
      {"sequence_index", KsType::kInt32, one},
      {"arrival_time_ns", KsType::kInt64, one},
      {"first_scheduled_time_ns", KsType::kInt64, one},
      {"first_token_time_ns", KsType::kInt64, one},
      {"last_token_time_ns", KsType::kInt64, one},
      {"kv_cache_reused_blocks", KsType::kInt32, one},
  };
}

class TokenResponder final : public KServeResponder {
 public:
  TokenResponder(const KServeRequest& request, const SubmittedRequest& submitted,
                 RequestGateway* gateway)
      : gateway_(gateway),
        id_(submitted.id),
        streaming_(request.streaming),
        echo_(request.exclude_input ? std::vector<int32_t>() : request.prompt_ids),
        stop_sequences_(request.stop_sequences),
        extras_(request, submitted, gateway->info().kv_block_size, kMainOutputs) {}

  Outcome Build(StreamBatch& batch, inference::ModelInferResponse* response) override {
    if (stopped_) {
      batch.tokens.clear();  // produced after the stop sequence: not part of the output
      batch.logprobs.clear();
    } else if (!stop_sequences_.empty()) {
      for (size_t i = 0; i < batch.tokens.size(); ++i) {
        generated_.push_back(batch.tokens[i]);
        if (MatchesStop()) {
          stopped_ = true;
          batch.tokens.resize(i + 1);
          if (batch.logprobs.size() > i + 1) batch.logprobs.resize(i + 1);
          if (!batch.finished) gateway_->StopMatched(id_, "stop_words_list");
          break;
        }
      }
    }
    pending_.insert(pending_.end(), batch.tokens.begin(), batch.tokens.end());
    pending_logprobs_.insert(pending_logprobs_.end(), batch.logprobs.begin(), batch.logprobs.end());
    if (!batch.finished && (!streaming_ || pending_.empty())) return {};
    const int new_tokens = static_cast<int>(pending_.size());
    std::vector<int32_t> ids;
    if (!streaming_) ids = echo_;
    ids.insert(ids.end(), pending_.begin(), pending_.end());
    const int32_t length = static_cast<int32_t>(ids.size());
    if (extras_.Wanted("output_ids")) {
      AddInt32Output("output_ids", {1, 1, length}, ids, response);
    }
    if (extras_.Wanted("sequence_length")) {
      AddInt32Output("sequence_length", {1, 1}, std::span<const int32_t>(&length, 1), response);
    }
    extras_.Add(pending_logprobs_, new_tokens, batch, FinishReasonOf(batch, stopped_), response);
    pending_.clear();
    pending_logprobs_.clear();
    return {true, new_tokens > 0 || !ids.empty()};
  }

 private:
  bool MatchesStop() const {
    for (const std::vector<int32_t>& seq : stop_sequences_) {
      if (seq.size() <= generated_.size() &&
          std::equal(seq.rbegin(), seq.rend(), generated_.rbegin())) {
        return true;
      }
    }
    return false;
  }

  RequestGateway* gateway_;
  batching::RequestId id_;
  bool streaming_;
  std::vector<int32_t> echo_;
  std::vector<std::vector<int32_t>> stop_sequences_;
  ExtraOutputs extras_;
  bool stopped_ = false;
  std::vector<int32_t> generated_;  // only kept while stop sequences are matched here
  std::vector<int32_t> pending_;
  std::vector<scheduler::SampleOutput> pending_logprobs_;
};

}  // namespace

StatusOr<std::vector<std::vector<int32_t>>> ParseWordList(std::span<const int64_t> values,
                                                          int64_t width, std::string_view name) {
  std::vector<std::vector<int32_t>> out;
  if (static_cast<int64_t>(values.size()) != 2 * width) {
    return InvalidArgument("input '", name, "' must have two rows (ids, offsets)");
  }
  int64_t begin = 0;
  for (int64_t i = 0; i < width; ++i) {
    const int64_t end = values[width + i];
    if (end < 0) break;  // padding
    if (end < begin || end > width) {
      return InvalidArgument("input '", name, "': offset ", end, " at position ", i,
                             " is out of order or beyond the ", width, " ids");
    }
    std::vector<int32_t> seq;
    for (int64_t j = begin; j < end; ++j) seq.push_back(static_cast<int32_t>(values[j]));
    if (!seq.empty()) out.push_back(std::move(seq));
    begin = end;
  }
  return out;
}

KServeTokenModel::KServeTokenModel(std::string name, RequestGateway* gateway)
    : KServeModel(std::move(name), gateway) {
  inputs_ = TokenInputs();
  outputs_ = TokenOutputs();
  stream_input_ = "streaming";
  field_names_ = {
      {"sampling.max_tokens", "request_output_len"},
      {"sampling.top_k", "runtime_top_k"},
      {"sampling.top_p", "runtime_top_p"},
      {"sampling.stop_token_ids", "end_id / stop_words_list"},
      {"sampling.", ""},
  };
}

StatusOr<KServeRequest> KServeTokenModel::Convert(const InputSet& in) const {
  KServeRequest r;
  if (in.Bool("stop").value_or(false)) {
    r.stop = true;
    return r;
  }
  const InputTensor* ids = in.Find("input_ids");
  std::vector<int64_t> prompt = ids->ints;
  if (auto length = in.Int("input_lengths")) {
    if (*length < 0 || *length > static_cast<int64_t>(prompt.size())) {
      return InvalidArgument("input 'input_lengths' = ", *length, " but input_ids holds ",
                             prompt.size(), " ids");
    }
    prompt.resize(static_cast<size_t>(*length));
  }
  if (prompt.empty()) return InvalidArgument("input 'input_ids': the prompt is empty");
  for (int64_t id : prompt) r.prompt_ids.push_back(static_cast<int32_t>(id));
  r.generation.input_ids = std::move(prompt);
  MOE_RETURN_IF_ERROR(ApplySamplingTensors(in,
                                           {.max_tokens = {"request_output_len"},
                                            .top_k = {"runtime_top_k"},
                                            .top_p = {"runtime_top_p"},
                                            .seed = {"seed", "random_seed"},
                                            .min_tokens = {"min_tokens", "min_length"},
                                            .length_penalty = {"len_penalty", "length_penalty"}},
                                           /*greedy_by_default=*/true, &r));
  r.streaming = in.Bool("streaming").value_or(false);
  if (const InputTensor* t = in.Find("stop_words_list")) {
    MOE_ASSIGN_OR_RETURN(auto seqs, ParseWordList(t->ints, t->shape.back(), t->name));
    for (std::vector<int32_t>& seq : seqs) {
      if (seq.size() == 1) {
        r.generation.sampling.stop_token_ids.push_back(seq[0]);
      } else {
        r.stop_sequences.push_back(std::move(seq));
      }
    }
  }
  if (const InputTensor* t = in.Find("bad_words_list")) {
    MOE_ASSIGN_OR_RETURN(auto seqs, ParseWordList(t->ints, t->shape.back(), t->name));
    if (!seqs.empty()) {
      return InvalidArgument("input 'bad_words_list': bad words are not supported");
    }
  }
  return r;
}

std::unique_ptr<KServeResponder> KServeTokenModel::NewResponder(
    const KServeRequest& request, const SubmittedRequest& submitted) const {
  return std::make_unique<TokenResponder>(request, submitted, gateway_);
}

}  // namespace moe::serving
