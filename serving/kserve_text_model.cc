#include "serving/kserve_text_model.h"

#include <cmath>
#include <cstdlib>
#include <optional>

#include <nlohmann/json.hpp>

#include "serving/text_stream.h"

namespace moe::serving {

namespace {

using Json = nlohmann::json;

const std::vector<std::string> kMainOutputs = {"text_output"};

std::vector<TensorSpec> TextInputs() {
  const std::vector<int64_t> one = {1};
  return {
      {"text_input", KsType::kBytes, one, false},
      {"max_tokens", KsType::kInt32, one, true},
      {"stream", KsType::kBool, one, true},
      {"exclude_input_in_output", KsType::kBool, one, true},
      {"end_id", KsType::kInt32, one, true},
      {"pad_id", KsType::kInt32, one, true},
      {"temperature", KsType::kFp32, one, true},
      {"top_k", KsType::kInt32, one, true},
      {"top_p", KsType::kFp32, one, true},
      {"repetition_penalty", KsType::kFp32, one, true},
      {"presence_penalty", KsType::kFp32, one, true},
      {"frequency_penalty", KsType::kFp32, one, true},
      {"length_penalty", KsType::kFp32, one, true},
      {"min_tokens", KsType::kInt32, one, true},
      {"min_length", KsType::kInt32, one, true},
      {"seed", KsType::kUint64, one, true},
      {"random_seed", KsType::kUint64, one, true},
      {"stop_words", KsType::kBytes, {-1}, true},
      {"bad_words", KsType::kBytes, {-1}, true},
      {"beam_width", KsType::kInt32, one, true},
      {"num_return_sequences", KsType::kInt32, one, true},
      {"return_log_probs", KsType::kBool, one, true},
      {"return_perf_metrics", KsType::kBool, one, true},
      {"return_context_logits", KsType::kBool, one, true},
      {"return_generation_logits", KsType::kBool, one, true},
      {"sampling_parameters", KsType::kBytes, one, true},
      {"return_finish_reason", KsType::kBool, one, true},
      {"return_num_input_tokens", KsType::kBool, one, true},
      {"return_num_output_tokens", KsType::kBool, one, true},
  };
}

std::vector<TensorSpec> TextOutputs() {
  const std::vector<int64_t> one = {1};
  return {
      {"text_output", KsType::kBytes, {-1}},
      {"cum_log_probs", KsType::kFp32, {-1}},
      {"output_log_probs", KsType::kFp32, {-1, -1}},
      {"finish_reason", KsType::kBytes, {-1}},
      {"num_input_tokens", KsType::kUint32, one},
      {"num_output_tokens", KsType::kUint32, one},
      {"arrival_time_ns", KsType::kInt64, one},
      {"first_scheduled_time_ns", KsType::kInt64, one},
      {"first_token_time_ns", KsType::kInt64, one},
      {"last_token_time_ns", KsType::kInt64, one},
      {"kv_cache_reused_blocks", KsType::kInt32, one},
      {"batch_index", KsType::kInt32, one},
      {"sequence_index", KsType::kInt32, one},
  };
}

class TextResponder final : public KServeResponder {
 public:
  TextResponder(const KServeRequest& request, const SubmittedRequest& submitted,
                RequestGateway* gateway)
      : gateway_(gateway),
        id_(submitted.id),
        streaming_(request.streaming),
        echo_(request.exclude_input ? "" : request.prompt_text),
        text_(*gateway->tokenizer(), request.generation.sampling.stop),
        extras_(request, submitted, gateway->info().kv_block_size, kMainOutputs) {}

  Outcome Build(StreamBatch& batch, inference::ModelInferResponse* response) override {
    if (!stopped_) {
      TextStream::Delta delta = text_.Add(batch.tokens);
      pending_text_ += delta.text;
      if (delta.stopped) {
        stopped_ = true;
        batch.tokens.resize(delta.tokens_kept);
        if (batch.logprobs.size() > delta.tokens_kept) batch.logprobs.resize(delta.tokens_kept);
        if (!batch.finished) gateway_->StopMatched(id_, text_.matched_stop());
      }
      if (batch.finished) pending_text_ += text_.Finish();
    } else {
      batch.tokens.clear();  // produced after the stop string: not part of the output
      batch.logprobs.clear();
    }
    pending_tokens_ += static_cast<int>(batch.tokens.size());
    pending_logprobs_.insert(pending_logprobs_.end(), batch.logprobs.begin(), batch.logprobs.end());
    if (!batch.finished && (!streaming_ || pending_text_.empty())) return {};
    std::string text = std::move(pending_text_);
    if (!echoed_) {
      text = echo_ + text;
      echoed_ = true;
    }
    const bool has_content = !text.empty() || pending_tokens_ > 0;
    if (extras_.Wanted("text_output")) {
      AddBytesOutput("text_output", {1, 1}, std::span<const std::string>(&text, 1), response);
    }
    extras_.Add(pending_logprobs_, pending_tokens_, batch, FinishReasonOf(batch, stopped_),
                response);
    pending_text_.clear();
    pending_tokens_ = 0;
    pending_logprobs_.clear();
    return {true, has_content};
  }

 private:
  RequestGateway* gateway_;
  batching::RequestId id_;
  bool streaming_;
  std::string echo_;
  TextStream text_;
  ExtraOutputs extras_;
  bool stopped_ = false;
  bool echoed_ = false;
  std::string pending_text_;
  int pending_tokens_ = 0;
  std::vector<scheduler::SampleOutput> pending_logprobs_;
};

// --- sampling_parameters JSON ------------------------------------------------------------------

// A number given as a JSON number or as a numeric string.
StatusOr<std::optional<double>> JsonNumber(const Json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<double>();
  if (it->is_number()) return std::optional<double>(it->get<double>());
  if (it->is_string()) {
    const std::string s = it->get<std::string>();
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size() && std::isfinite(v)) {
      return std::optional<double>(v);
    }
  }
  return InvalidArgument("sampling_parameters.", key, ": expected a number, got ", it->dump());
}

StatusOr<std::optional<int64_t>> JsonInt(const Json& obj, const char* key) {
  MOE_ASSIGN_OR_RETURN(std::optional<double> v, JsonNumber(obj, key));
  if (!v) return std::optional<int64_t>();
  if (*v != std::floor(*v) || std::fabs(*v) > 9.0e18) {
    return InvalidArgument("sampling_parameters.", key, ": expected an integer, got ", *v);
  }
  return std::optional<int64_t>(static_cast<int64_t>(*v));
}

StatusOr<std::optional<bool>> JsonBool(const Json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<bool>();
  if (it->is_boolean()) return std::optional<bool>(it->get<bool>());
  if (it->is_string()) {
    const std::string s = it->get<std::string>();
    if (s == "true" || s == "True") return std::optional<bool>(true);
    if (s == "false" || s == "False") return std::optional<bool>(false);
  }
  return InvalidArgument("sampling_parameters.", key, ": expected true or false, got ", it->dump());
}

}  // namespace

Status ApplySamplingParametersJson(std::string_view json, KServeRequest* request) {
  Json obj = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (obj.is_discarded() || !obj.is_object()) {
    return InvalidArgument("input 'sampling_parameters' must be a JSON object");
  }
  static const char* const kKnown[] = {
      "temperature", "top_p", "top_k", "min_p", "max_tokens", "min_tokens", "presence_penalty",
      "frequency_penalty", "repetition_penalty", "seed", "stop", "stop_token_ids", "ignore_eos",
      "n", "best_of", "logprobs",
      // Accepted and ignored: they do not change the tokens moeserve produces.
      "skip_special_tokens", "spaces_between_special_tokens", "include_stop_str_in_output",
      "detokenize", "use_beam_search", "length_penalty", "early_stopping", "prompt_logprobs"};
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    bool known = false;
    for (const char* k : kKnown) known = known || it.key() == k;
    if (!known) {
      return InvalidArgument("sampling_parameters: unknown or unsupported key '", it.key(), "'");
    }
  }
  batching::SamplingParams& s = request->generation.sampling;
  s.temperature = 1.0f;  // vLLM's default
  MOE_ASSIGN_OR_RETURN(auto temperature, JsonNumber(obj, "temperature"));
  if (temperature) s.temperature = static_cast<float>(*temperature);
  MOE_ASSIGN_OR_RETURN(auto top_p, JsonNumber(obj, "top_p"));
  if (top_p) s.top_p = static_cast<float>(*top_p);
  MOE_ASSIGN_OR_RETURN(auto top_k, JsonInt(obj, "top_k"));
  if (top_k) s.top_k = static_cast<int32_t>(*top_k);
  MOE_ASSIGN_OR_RETURN(auto min_p, JsonNumber(obj, "min_p"));
  if (min_p) s.min_p = static_cast<float>(*min_p);
  MOE_ASSIGN_OR_RETURN(auto max_tokens, JsonInt(obj, "max_tokens"));
  if (max_tokens) {
    if (*max_tokens < 1 || *max_tokens > INT32_MAX) {
      return InvalidArgument("sampling_parameters.max_tokens must be >= 1, got ", *max_tokens);
    }
    s.max_tokens = static_cast<int32_t>(*max_tokens);
  }
  MOE_ASSIGN_OR_RETURN(auto min_tokens, JsonInt(obj, "min_tokens"));
  if (min_tokens) {
    if (*min_tokens < 0 || *min_tokens > INT32_MAX) {
      return InvalidArgument("sampling_parameters.min_tokens must be >= 0, got ", *min_tokens);
    }
    s.min_tokens = static_cast<int32_t>(*min_tokens);
  }
  MOE_ASSIGN_OR_RETURN(auto presence, JsonNumber(obj, "presence_penalty"));
  if (presence) s.presence_penalty = static_cast<float>(*presence);
  MOE_ASSIGN_OR_RETURN(auto frequency, JsonNumber(obj, "frequency_penalty"));
  if (frequency) s.frequency_penalty = static_cast<float>(*frequency);
  MOE_ASSIGN_OR_RETURN(auto repetition, JsonNumber(obj, "repetition_penalty"));
  if (repetition) s.repetition_penalty = static_cast<float>(*repetition);
  MOE_ASSIGN_OR_RETURN(auto seed, JsonInt(obj, "seed"));
  if (seed) s.seed = static_cast<uint64_t>(*seed);
  MOE_ASSIGN_OR_RETURN(auto ignore_eos, JsonBool(obj, "ignore_eos"));
  if (ignore_eos) s.ignore_eos = *ignore_eos;
  MOE_ASSIGN_OR_RETURN(auto logprobs, JsonInt(obj, "logprobs"));
  if (logprobs) {
    if (*logprobs < 0 || *logprobs > 20) {
      return InvalidArgument("sampling_parameters.logprobs must be in [0, 20], got ", *logprobs);
    }
    s.logprobs = static_cast<int32_t>(*logprobs);
  }
  for (const char* key : {"n", "best_of"}) {
    MOE_ASSIGN_OR_RETURN(auto n, JsonInt(obj, key));
    if (n && *n != 1) {
      return InvalidArgument("sampling_parameters.", key, " = ", *n, ": only 1 is supported");
    }
  }
  MOE_ASSIGN_OR_RETURN(auto beam, JsonBool(obj, "use_beam_search"));
  if (beam.value_or(false)) {
    return InvalidArgument("sampling_parameters.use_beam_search: beam search is not supported");
  }
  if (auto it = obj.find("stop"); it != obj.end() && !it->is_null()) {
    if (it->is_string()) {
      if (!it->get<std::string>().empty()) s.stop.push_back(it->get<std::string>());
    } else if (it->is_array()) {
      for (const Json& e : *it) {
        if (!e.is_string()) {
          return InvalidArgument("sampling_parameters.stop: expected strings, got ", e.dump());
        }
        if (!e.get<std::string>().empty()) s.stop.push_back(e.get<std::string>());
      }
    } else {
      return InvalidArgument("sampling_parameters.stop: expected a string or a list of strings");
    }
  }
  if (auto it = obj.find("stop_token_ids"); it != obj.end() && !it->is_null()) {
    if (!it->is_array()) {
      return InvalidArgument("sampling_parameters.stop_token_ids: expected a list of integers");
    }
    for (const Json& e : *it) {
      if (!e.is_number_integer()) {
        return InvalidArgument("sampling_parameters.stop_token_ids: expected integers, got ",
                               e.dump());
      }
      s.stop_token_ids.push_back(static_cast<int32_t>(e.get<int64_t>()));
    }
  }
  return OkStatus();
}

KServeTextModel::KServeTextModel(std::string name, RequestGateway* gateway)
    : KServeModel(std::move(name), gateway) {
  inputs_ = TextInputs();
  outputs_ = TextOutputs();
  stream_input_ = "stream";
  field_names_ = {
      {"sampling.max_tokens", "max_tokens"},
      {"sampling.stop_token_ids", "end_id / sampling_parameters.stop_token_ids"},
      {"sampling.stop", "stop_words"},
      {"sampling.min_tokens", "min_tokens"},
      {"sampling.", ""},
      {"input_ids:", "text_input:"},
  };
}

Status KServeTextModel::Available() const {
  if (gateway_->tokenizer() == nullptr) {
    return FailedPrecondition("model '", name_,
                              "' needs a tokenizer and the served model has none; send token ids "
                              "to the token model instead");
  }
  return OkStatus();
}

StatusOr<KServeRequest> KServeTextModel::Convert(const InputSet& in) const {
  KServeRequest r;
  const InputTensor* text = in.Find("text_input");
  if (text->bytes[0].empty()) return InvalidArgument("input 'text_input': the prompt is empty");
  r.prompt_text = text->bytes[0];
  r.generation.text = text->bytes[0];
  const InputTensor* json = in.Find("sampling_parameters");
  if (json != nullptr) MOE_RETURN_IF_ERROR(ApplySamplingParametersJson(json->bytes[0], &r));
  MOE_RETURN_IF_ERROR(ApplySamplingTensors(in,
                                           {.max_tokens = {"max_tokens"},
                                            .top_k = {"top_k"},
                                            .top_p = {"top_p"},
                                            .seed = {"seed", "random_seed"},
                                            .min_tokens = {"min_tokens", "min_length"},
                                            .length_penalty = {"length_penalty"}},
                                           /*greedy_by_default=*/json == nullptr, &r));
  r.streaming = in.Bool("stream").value_or(false);
  if (const InputTensor* stops = in.Find("stop_words")) {
    for (const std::string& s : stops->bytes) {
      if (!s.empty()) r.generation.sampling.stop.push_back(s);
    }
  }
  if (const InputTensor* bad = in.Find("bad_words")) {
    for (const std::string& s : bad->bytes) {
      if (!s.empty()) return InvalidArgument("input 'bad_words': bad words are not supported");
    }
  }
  r.return_finish_reason = in.Bool("return_finish_reason").value_or(false);
  r.return_num_input_tokens = in.Bool("return_num_input_tokens").value_or(false);
  r.return_num_output_tokens = in.Bool("return_num_output_tokens").value_or(false);
  return r;
}

std::unique_ptr<KServeResponder> KServeTextModel::NewResponder(
    const KServeRequest& request, const SubmittedRequest& submitted) const {
  return std::make_unique<TextResponder>(request, submitted, gateway_);
}

}  // namespace moe::serving
