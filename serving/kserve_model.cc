#include "serving/kserve_model.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace moe::serving {

namespace {

constexpr char kVersionName[] = "1";
constexpr int kMaxBatchSize = 1;

bool Contains(const std::vector<std::string>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

// `shape` fits `dims` (with -1 wildcards), with or without a leading batch dimension of 1.
Status CheckShape(const TensorSpec& spec, const InputTensor& t) {
  const std::vector<int64_t>& shape = t.shape;
  const size_t rank = spec.dims.size();
  size_t offset = 0;
  if (shape.size() == rank + 1) {
    if (shape[0] != 1) {
      return InvalidArgument("input '", spec.name, "': batch size ", shape[0],
                             " is not supported (max_batch_size is ", kMaxBatchSize,
                             "); send one request per sequence");
    }
    offset = 1;
  } else if (shape.size() != rank) {
    return InvalidArgument("input '", spec.name, "': shape ", ShapeString(shape),
                           " does not match the model's dims ", ShapeString(spec.dims),
                           " (with an optional leading batch dimension of 1)");
  }
  for (size_t i = 0; i < rank; ++i) {
    if (spec.dims[i] >= 0 && shape[offset + i] != spec.dims[i]) {
      return InvalidArgument("input '", spec.name, "': shape ", ShapeString(shape),
                             " does not match the model's dims ", ShapeString(spec.dims),
                             " (with an optional leading batch dimension of 1)");
    }
  }
  return OkStatus();
}

const InputTensor* FirstOf(const InputSet& in, std::initializer_list<std::string_view> names) {
  for (std::string_view n : names) {
    if (const InputTensor* t = in.Find(n)) return t;
  }
  return nullptr;
}

bool IsPerfOutput(std::string_view name) {
  return name == "arrival_time_ns" || name == "first_scheduled_time_ns" ||
         name == "first_token_time_ns" || name == "last_token_time_ns" ||
         name == "kv_cache_reused_blocks";
}

}  // namespace

// --- InputSet ----------------------------------------------------------------------------------

const InputTensor* InputSet::Find(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

std::optional<bool> InputSet::Bool(std::string_view name) const {
  const InputTensor* t = Find(name);
  if (t == nullptr || t->ints.empty()) return std::nullopt;
  return t->ints[0] != 0;
}

std::optional<int64_t> InputSet::Int(std::string_view name) const {
  const InputTensor* t = Find(name);
  if (t == nullptr || t->ints.empty()) return std::nullopt;
  return t->ints[0];
}

std::optional<uint64_t> InputSet::Uint64(std::string_view name) const {
  const InputTensor* t = Find(name);
  if (t == nullptr || t->u64s.empty()) return std::nullopt;
  return t->u64s[0];
}

std::optional<double> InputSet::Float(std::string_view name) const {
  const InputTensor* t = Find(name);
  if (t == nullptr || t->floats.empty()) return std::nullopt;
  return t->floats[0];
}

std::optional<int64_t> InputSet::IntOf(std::initializer_list<std::string_view> names) const {
  for (std::string_view n : names) {
    if (auto v = Int(n)) return v;
  }
  return std::nullopt;
}

std::optional<uint64_t> InputSet::Uint64Of(std::initializer_list<std::string_view> names) const {
  for (std::string_view n : names) {
    if (auto v = Uint64(n)) return v;
  }
  return std::nullopt;
}

// --- KServeModel -------------------------------------------------------------------------------

KServeModel::KServeModel(std::string name, RequestGateway* gateway)
    : name_(std::move(name)), gateway_(gateway) {}

void KServeModel::FillMetadata(inference::ModelMetadataResponse* response) const {
  response->set_name(name_);
  response->mutable_versions()->Add(std::string(kVersionName));
  response->set_platform("moeserve");
  auto add = [](const TensorSpec& spec, inference::ModelMetadataResponse::TensorMetadata* m) {
    m->set_name(spec.name);
    m->set_datatype(KsTypeName(spec.type));
    m->add_shape(-1);  // the batch dimension
    for (int64_t d : spec.dims) m->add_shape(d);
  };
  for (const TensorSpec& spec : inputs_) add(spec, response->add_inputs());
  for (const TensorSpec& spec : outputs_) add(spec, response->add_outputs());
}

void KServeModel::FillConfig(inference::ModelConfig* config) const {
  config->set_name(name_);
  config->set_platform("moeserve");
  config->set_backend("moeserve");
  config->set_max_batch_size(kMaxBatchSize);
  for (const TensorSpec& spec : inputs_) {
    inference::ModelInput* in = config->add_input();
    in->set_name(spec.name);
    in->set_data_type(KsConfigType(spec.type));
    for (int64_t d : spec.dims) in->add_dims(d);
    in->set_optional(spec.optional);
    in->set_allow_ragged_batch(std::find(spec.dims.begin(), spec.dims.end(), -1) !=
                               spec.dims.end());
  }
  for (const TensorSpec& spec : outputs_) {
    inference::ModelOutput* out = config->add_output();
    out->set_name(spec.name);
    out->set_data_type(KsConfigType(spec.type));
    for (int64_t d : spec.dims) out->add_dims(d);
  }
  config->mutable_dynamic_batching();
  config->mutable_model_transaction_policy()->set_decoupled(true);
}

bool KServeModel::IsStopRequest(const InputSet& inputs) const {
  return inputs.Bool("stop").value_or(false);
}

StatusOr<KServeRequest> KServeModel::Parse(const inference::ModelInferRequest& request) const {
  MOE_RETURN_IF_ERROR(Available());
  MOE_RETURN_IF_ERROR(CheckInputEncoding(request));
  std::map<std::string, InputTensor, std::less<>> tensors;
  for (int i = 0; i < request.inputs_size(); ++i) {
    const auto& input = request.inputs(i);
    auto spec = std::find_if(inputs_.begin(), inputs_.end(),
                             [&](const TensorSpec& s) { return s.name == input.name(); });
    if (spec == inputs_.end()) {
      std::vector<std::string> known;
      for (const TensorSpec& s : inputs_) known.push_back(s.name);
      return InvalidArgument("unknown input tensor '", input.name(), "' for model '", name_,
                             "' (inputs: ", absl::StrJoin(known, ", "), ")");
    }
    if (KsTypeFromName(input.datatype()) != spec->type) {
      return InvalidArgument("input '", spec->name, "': datatype '", input.datatype(),
                             "' does not match the model's ", KsTypeName(spec->type));
    }
    if (tensors.count(input.name()) > 0) {
      return InvalidArgument("input '", input.name(), "' is given twice");
    }
    MOE_ASSIGN_OR_RETURN(InputTensor t, DecodeInput(request, i));
    MOE_RETURN_IF_ERROR(CheckShape(*spec, t));
    tensors.emplace(t.name, std::move(t));
  }
  InputSet in(std::move(tensors));
  if (!IsStopRequest(in)) {
    for (const TensorSpec& spec : inputs_) {
      if (!spec.optional && in.Find(spec.name) == nullptr) {
        return InvalidArgument("missing required input '", spec.name, "' for model '", name_, "'");
      }
    }
  }
  std::vector<std::string> requested;
  for (const auto& out : request.outputs()) {
    auto spec = std::find_if(outputs_.begin(), outputs_.end(),
                             [&](const TensorSpec& s) { return s.name == out.name(); });
    if (spec == outputs_.end()) {
      std::vector<std::string> known;
      for (const TensorSpec& s : outputs_) known.push_back(s.name);
      return InvalidArgument("unknown output tensor '", out.name(), "' for model '", name_,
                             "' (outputs: ", absl::StrJoin(known, ", "), ")");
    }
    requested.push_back(out.name());
  }
  MOE_ASSIGN_OR_RETURN(KServeRequest parsed, Convert(in));
  parsed.generation.external_id = request.id();
  parsed.requested_outputs = std::move(requested);
  // Naming an output asks for it.
  for (const std::string& out : parsed.requested_outputs) {
    if (out == "cum_log_probs" || out == "output_log_probs") parsed.return_log_probs = true;
    if (out == "finish_reason") parsed.return_finish_reason = true;
    if (out == "num_input_tokens") parsed.return_num_input_tokens = true;
    if (out == "num_output_tokens") parsed.return_num_output_tokens = true;
    if (IsPerfOutput(out)) parsed.return_perf_metrics = true;
  }
  if (parsed.return_log_probs && parsed.generation.sampling.logprobs == 0) {
    parsed.generation.sampling.logprobs = 1;
  }
  return parsed;
}

Status KServeModel::RenameFields(const Status& status) const {
  if (status.ok() || field_names_.empty()) return status;
  std::string message(status.message());
  for (const auto& [field, tensor] : field_names_) {
    message = absl::StrReplaceAll(message, {{field, tensor}});
  }
  return Status(status.code(), message);
}

// --- KServeModelSet ----------------------------------------------------------------------------

StatusOr<const KServeModel*> KServeModelSet::Find(std::string_view name,
                                                  std::string_view version) const {
  for (const auto& model : models_) {
    if (model->name() != name) continue;
    if (!version.empty() && version != kVersionName) {
      return NotFound("model '", name, "' has no version '", version, "' (versions: ", kVersionName,
                      ")");
    }
    return model.get();
  }
  std::vector<std::string> names;
  for (const auto& model : models_) names.push_back(model->name());
  return NotFound("unknown model '", name, "' (models: ", absl::StrJoin(names, ", "), ")");
}

// --- shared sampling inputs --------------------------------------------------------------------

Status ApplySamplingTensors(const InputSet& in, const SamplingTensorNames& names,
                            bool greedy_by_default, KServeRequest* request) {
  batching::SamplingParams& s = request->generation.sampling;
  if (const InputTensor* t = FirstOf(in, names.max_tokens)) {
    if (t->ints[0] < 1) {
      return InvalidArgument("input '", t->name, "' must be >= 1, got ", t->ints[0]);
    }
    s.max_tokens = static_cast<int32_t>(std::min<int64_t>(t->ints[0], INT32_MAX));
  }
  // TRT-LLM semantics: without any sampling input the request is greedy; with one, the others
  // keep their defaults (temperature 1).
  const InputTensor* temperature = in.Find("temperature");
  const InputTensor* top_k = FirstOf(in, names.top_k);
  const InputTensor* top_p = FirstOf(in, names.top_p);
  if (greedy_by_default) {
    const bool sampling = temperature != nullptr || top_k != nullptr || top_p != nullptr;
    s.temperature = sampling ? 1.0f : 0.0f;
  }
  if (temperature != nullptr) {
    const double v = temperature->floats[0];
    if (!std::isfinite(v) || v < 0) {
      return InvalidArgument("input 'temperature' must be a finite value >= 0, got ", v);
    }
    s.temperature = static_cast<float>(v);
  }
  if (top_k != nullptr) {
    const int64_t v = top_k->ints[0];
    if (v < -1) return InvalidArgument("input '", top_k->name, "' must be >= 0, got ", v);
    s.top_k = static_cast<int32_t>(std::min<int64_t>(v, INT32_MAX));
  }
  if (top_p != nullptr) {
    const double v = top_p->floats[0];
    if (!(v >= 0 && v <= 1)) {
      return InvalidArgument("input '", top_p->name, "' must be in [0, 1], got ", v);
    }
    s.top_p = v == 0 ? 1.0f : static_cast<float>(v);  // TRT-LLM: 0 = off
  }
  if (auto v = in.Float("repetition_penalty")) {
    if (!std::isfinite(*v) || *v <= 0) {
      return InvalidArgument("input 'repetition_penalty' must be > 0, got ", *v);
    }
    s.repetition_penalty = static_cast<float>(*v);
  }
  if (auto v = in.Float("presence_penalty")) {
    if (!(*v >= -2 && *v <= 2)) {
      return InvalidArgument("input 'presence_penalty' must be in [-2, 2], got ", *v);
    }
    s.presence_penalty = static_cast<float>(*v);
  }
  if (auto v = in.Float("frequency_penalty")) {
    if (!(*v >= -2 && *v <= 2)) {
      return InvalidArgument("input 'frequency_penalty' must be in [-2, 2], got ", *v);
    }
    s.frequency_penalty = static_cast<float>(*v);
  }
  if (const InputTensor* t = FirstOf(in, names.min_tokens)) {
    if (t->ints[0] < 0) {
      return InvalidArgument("input '", t->name, "' must be >= 0, got ", t->ints[0]);
    }
    s.min_tokens = static_cast<int32_t>(std::min<int64_t>(t->ints[0], INT32_MAX));
    if (s.max_tokens && s.min_tokens > *s.max_tokens) {
      return InvalidArgument("input '", t->name, "' (", s.min_tokens,
                             ") exceeds the maximum output length (", *s.max_tokens, ")");
    }
  }
  if (auto v = in.Uint64Of(names.seed)) s.seed = *v;
  if (const InputTensor* t = FirstOf(in, names.length_penalty)) {
    // Only meaningful for beam search; accepted and ignored with beam_width 1.
    if (!std::isfinite(t->floats[0])) {
      return InvalidArgument("input '", t->name, "' must be finite");
    }
  }
  if (auto v = in.Int("end_id"); v && *v >= 0) {
    s.stop_token_ids.push_back(static_cast<int32_t>(std::min<int64_t>(*v, INT32_MAX)));
  }
  if (auto v = in.Int("beam_width"); v && *v > 1) {
    return InvalidArgument("input 'beam_width' = ", *v, ": only 1 (no beam search) is supported");
  }
  if (auto v = in.Int("num_return_sequences"); v && *v > 1) {
    return InvalidArgument("input 'num_return_sequences' = ", *v, ": only 1 is supported");
  }
  for (const char* name : {"return_context_logits", "return_generation_logits"}) {
    if (in.Bool(name).value_or(false)) {
      return InvalidArgument("input '", name, "': returning logits is not supported");
    }
  }
  request->exclude_input = in.Bool("exclude_input_in_output").value_or(false);
  request->return_log_probs = in.Bool("return_log_probs").value_or(false);
  request->return_perf_metrics = in.Bool("return_perf_metrics").value_or(false);
  return OkStatus();
}

// --- ExtraOutputs ------------------------------------------------------------------------------

ExtraOutputs::ExtraOutputs(const KServeRequest& request, const SubmittedRequest& submitted,
                           int kv_block_size, std::vector<std::string> main_outputs)
    : requested_(request.requested_outputs),
      main_(std::move(main_outputs)),
      log_probs_(request.return_log_probs),
      perf_(request.return_perf_metrics),
      finish_reason_(request.return_finish_reason),
      num_input_(request.return_num_input_tokens),
      num_output_(request.return_num_output_tokens),
      prompt_tokens_(submitted.prompt_tokens),
      kv_block_size_(kv_block_size) {}

bool ExtraOutputs::Wanted(std::string_view name) const {
  if (!requested_.empty()) return Contains(requested_, name);
  if (Contains(main_, name)) return true;
  if (name == "cum_log_probs" || name == "output_log_probs") return log_probs_;
  if (name == "finish_reason") return finish_reason_;
  if (name == "num_input_tokens") return num_input_;
  if (name == "num_output_tokens") return num_output_;
  if (IsPerfOutput(name)) return perf_;
  return false;
}

void ExtraOutputs::Add(std::span<const scheduler::SampleOutput> logprobs, int num_tokens,
                       const StreamBatch& batch, const std::string& finish_reason,
                       inference::ModelInferResponse* response) {
  std::vector<float> lp;
  for (const scheduler::SampleOutput& s : logprobs) {
    lp.push_back(s.logprob);
    cum_logprob_ += s.logprob;
  }
  if (Wanted("cum_log_probs")) {
    const float cum = static_cast<float>(cum_logprob_);
    AddFp32Output("cum_log_probs", {1, 1}, std::span<const float>(&cum, 1), response);
  }
  if (Wanted("output_log_probs")) {
    AddFp32Output("output_log_probs", {1, 1, static_cast<int64_t>(lp.size())}, lp, response);
  }
  if (Wanted("finish_reason")) {
    const std::string reason = batch.finished ? finish_reason : "";
    AddBytesOutput("finish_reason", {1, 1}, std::span<const std::string>(&reason, 1), response);
  }
  if (Wanted("num_input_tokens")) {
    const uint32_t n = static_cast<uint32_t>(prompt_tokens_);
    AddUint32Output("num_input_tokens", {1, 1}, std::span<const uint32_t>(&n, 1), response);
  }
  if (Wanted("num_output_tokens")) {
    const uint32_t n = static_cast<uint32_t>(num_tokens);
    AddUint32Output("num_output_tokens", {1, 1}, std::span<const uint32_t>(&n, 1), response);
  }
  if (Wanted("batch_index")) {
    const int32_t zero = 0;
    AddInt32Output("batch_index", {1, 1}, std::span<const int32_t>(&zero, 1), response);
  }
  if (Wanted("sequence_index")) {
    const int32_t zero = 0;
    AddInt32Output("sequence_index", {1, 1}, std::span<const int32_t>(&zero, 1), response);
  }
  if (!batch.finished) return;
  const engine::RequestOutput& out = batch.final;
  const std::pair<const char*, int64_t> times[] = {
      {"arrival_time_ns", out.arrival_time_ns},
      {"first_scheduled_time_ns", out.first_scheduled_time_ns},
      {"first_token_time_ns", out.first_token_time_ns},
      {"last_token_time_ns", out.last_token_time_ns},
  };
  for (const auto& [name, value] : times) {
    if (Wanted(name)) AddInt64Output(name, {1, 1}, std::span<const int64_t>(&value, 1), response);
  }
  if (Wanted("kv_cache_reused_blocks")) {
    const int32_t blocks =
        kv_block_size_ > 0 ? static_cast<int32_t>(out.cached_tokens / kv_block_size_) : 0;
    AddInt32Output("kv_cache_reused_blocks", {1, 1}, std::span<const int32_t>(&blocks, 1),
                   response);
  }
}

std::string FinishReasonOf(const StreamBatch& batch, bool stopped_by_serving) {
  if (!batch.finished) return "";
  if (stopped_by_serving) return "stop";
  return std::string(batching::FinishReasonName(batch.final.finish_reason));
}

}  // namespace moe::serving
