#include "model/model_config.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace moe::model {
namespace {

using nlohmann::json;

// Reads fields of one config object, turning every type problem into an error that names the
// file and the field.
class FieldReader {
 public:
  FieldReader(const json& obj, const std::string& source) : obj_(obj), source_(source) {}

  bool Has(const char* key) const { return obj_.contains(key) && !obj_.at(key).is_null(); }

  StatusOr<int> Int(const char* key, std::optional<int> fallback) const {
    if (!Has(key)) {
      if (fallback) return *fallback;
      return InvalidArgument(source_, ": missing required field '", key, "'");
    }
    const json& v = obj_.at(key);
    if (v.is_number_integer()) {
      const int64_t x = v.get<int64_t>();
      if (x < INT32_MIN || x > INT32_MAX) return Bad(key, "an integer in int32 range", v);
      return static_cast<int>(x);
    }
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (d == static_cast<double>(static_cast<int64_t>(d)) && d >= INT32_MIN && d <= INT32_MAX)
        return static_cast<int>(d);
    }
    return Bad(key, "an integer", v);
  }

  StatusOr<double> Double(const char* key, double fallback) const {
    if (!Has(key)) return fallback;
    const json& v = obj_.at(key);
    if (!v.is_number()) return Bad(key, "a number", v);
    return v.get<double>();
  }

  StatusOr<bool> Bool(const char* key, bool fallback) const {
    if (!Has(key)) return fallback;
    const json& v = obj_.at(key);
    if (!v.is_boolean()) return Bad(key, "true or false", v);
    return v.get<bool>();
  }

  StatusOr<std::string> String(const char* key, const std::string& fallback) const {
    if (!Has(key)) return fallback;
    const json& v = obj_.at(key);
    if (!v.is_string()) return Bad(key, "a string", v);
    return v.get<std::string>();
  }

  // An int, a list of ints, or null/absent (empty).
  StatusOr<std::vector<int>> IntList(const char* key) const {
    std::vector<int> out;
    if (!Has(key)) return out;
    const json& v = obj_.at(key);
    if (v.is_number_integer()) {
      const int64_t x = v.get<int64_t>();
      if (x < INT32_MIN || x > INT32_MAX) return Bad(key, "an integer in int32 range", v);
      out.push_back(static_cast<int>(x));
      return out;
    }
    if (!v.is_array()) return Bad(key, "an integer or a list of integers", v);
    for (const json& e : v) {
      if (!e.is_number_integer()) return Bad(key, "a list of integers", v);
      const int64_t x = e.get<int64_t>();
      if (x < INT32_MIN || x > INT32_MAX) return Bad(key, "integers in int32 range", v);
      out.push_back(static_cast<int>(x));
    }
    return out;
  }

  Status Bad(const char* key, const char* expected, const json& v) const {
    std::string shown = v.dump();
    if (shown.size() > 80) shown.replace(77, std::string::npos, "...");
    return InvalidArgument(source_, ": field '", key, "' must be ", expected, ", got ", shown);
  }

  Status Unsupported(const char* key, const std::string& why) const {
    return Unimplemented(source_, ": unsupported: ", key, " (", why, ")");
  }

 private:
  const json& obj_;
  const std::string& source_;
};

struct ArchDefaults {
  ModelArch arch;
  const char* model_type;
  const char* experts_key;      // num_experts or num_local_experts
  const char* expert_size_key;  // moe_intermediate_size or intermediate_size
  double rope_theta;
  double rms_norm_eps;
  bool norm_topk_prob;
  QkNormKind qk_norm;
  RouterKind router;
  bool qkv_bias;
  bool has_sparse_step;  // decoder_sparse_step / mlp_only_layers
};

constexpr ArchDefaults kArchs[] = {
    {ModelArch::kQwen3Moe, "qwen3_moe", "num_experts", "moe_intermediate_size", 10000.0, 1e-6,
     false, QkNormKind::kPerHead, RouterKind::kSoftmaxTopK, false, true},
    {ModelArch::kMixtral, "mixtral", "num_local_experts", "intermediate_size", 1e6, 1e-5, true,
     QkNormKind::kNone, RouterKind::kTopKSoftmax, false, false},
    {ModelArch::kQwen2Moe, "qwen2_moe", "num_experts", "moe_intermediate_size", 10000.0, 1e-6,
     false, QkNormKind::kNone, RouterKind::kSoftmaxTopK, true, true},
    {ModelArch::kOlmoe, "olmoe", "num_experts", "intermediate_size", 10000.0, 1e-5, false,
     QkNormKind::kFull, RouterKind::kSoftmaxTopK, false, false},
};

Status ParseInto(const json& root, const std::string& source, ModelConfig* c) {
  if (!root.is_object()) return InvalidArgument(source, ": top level must be a JSON object");
  FieldReader r(root, source);
  MOE_ASSIGN_OR_RETURN(c->model_type, r.String("model_type", ""));
  if (c->model_type.empty()) {
    return InvalidArgument(source, ": missing required field 'model_type'");
  }
  const ArchDefaults* arch = nullptr;
  for (const ArchDefaults& a : kArchs) {
    if (c->model_type == a.model_type) arch = &a;
  }
  if (arch == nullptr) {
    return r.Unsupported(
        "model_type", "'" + c->model_type + "'; supported: qwen3_moe, mixtral, qwen2_moe, olmoe");
  }
  c->arch = arch->arch;
  if (r.Has("architectures")) {
    const json& a = root.at("architectures");
    if (!a.is_array() || a.empty() || !a[0].is_string()) {
      return r.Bad("architectures", "a non-empty list of strings", a);
    }
    c->architecture = a[0].get<std::string>();
  }

  MOE_ASSIGN_OR_RETURN(c->hidden_size, r.Int("hidden_size", std::nullopt));
  MOE_ASSIGN_OR_RETURN(c->num_layers, r.Int("num_hidden_layers", std::nullopt));
  MOE_ASSIGN_OR_RETURN(c->num_heads, r.Int("num_attention_heads", std::nullopt));
  MOE_ASSIGN_OR_RETURN(c->num_kv_heads, r.Int("num_key_value_heads", c->num_heads));
  if (c->num_heads <= 0)
    return r.Bad("num_attention_heads", "a positive integer", root.at("num_attention_heads"));
  MOE_ASSIGN_OR_RETURN(c->head_dim, r.Int("head_dim", c->hidden_size / c->num_heads));
  MOE_ASSIGN_OR_RETURN(c->vocab_size, r.Int("vocab_size", std::nullopt));
  MOE_ASSIGN_OR_RETURN(c->max_position_embeddings, r.Int("max_position_embeddings", 32768));
  MOE_ASSIGN_OR_RETURN(c->rope_theta, r.Double("rope_theta", arch->rope_theta));
  MOE_ASSIGN_OR_RETURN(c->rms_norm_eps, r.Double("rms_norm_eps", arch->rms_norm_eps));

  MOE_ASSIGN_OR_RETURN(c->num_experts, r.Int(arch->experts_key, std::nullopt));
  MOE_ASSIGN_OR_RETURN(c->num_experts_per_tok, r.Int("num_experts_per_tok", std::nullopt));
  MOE_ASSIGN_OR_RETURN(c->moe_intermediate_size, r.Int(arch->expert_size_key, std::nullopt));
  MOE_ASSIGN_OR_RETURN(c->intermediate_size, r.Int("intermediate_size", 0));
  if (c->arch == ModelArch::kMixtral) {
    c->norm_topk_prob = true;  // top-k logits -> softmax is normalised by construction
  } else {
    MOE_ASSIGN_OR_RETURN(c->norm_topk_prob, r.Bool("norm_topk_prob", arch->norm_topk_prob));
  }
  if (arch->has_sparse_step) {
    MOE_ASSIGN_OR_RETURN(c->decoder_sparse_step, r.Int("decoder_sparse_step", 1));
    MOE_ASSIGN_OR_RETURN(c->mlp_only_layers, r.IntList("mlp_only_layers"));
  }
  if (c->arch == ModelArch::kQwen2Moe) {
    MOE_ASSIGN_OR_RETURN(c->shared_expert_intermediate_size,
                         r.Int("shared_expert_intermediate_size", 0));
  }
  c->qk_norm = arch->qk_norm;
  c->router = arch->router;
  c->qkv_bias = arch->qkv_bias;
  if (c->arch != ModelArch::kQwen2Moe) {
    MOE_ASSIGN_OR_RETURN(c->qkv_bias, r.Bool("attention_bias", false));
  }
  MOE_ASSIGN_OR_RETURN(c->tie_word_embeddings, r.Bool("tie_word_embeddings", false));

  std::string dtype_text;
  MOE_ASSIGN_OR_RETURN(dtype_text, r.String("torch_dtype", ""));
  if (dtype_text.empty()) {
    MOE_ASSIGN_OR_RETURN(dtype_text, r.String("dtype", "bfloat16"));
  }
  if (dtype_text == "bfloat16") {
    c->torch_dtype = DType::kBF16;
  } else if (dtype_text == "float16") {
    c->torch_dtype = DType::kF16;
  } else if (dtype_text == "float32") {
    c->torch_dtype = DType::kF32;
  } else {
    return r.Unsupported("torch_dtype",
                         "'" + dtype_text + "'; supported: bfloat16, float16, float32");
  }

  std::vector<int> bos;
  MOE_ASSIGN_OR_RETURN(bos, r.IntList("bos_token_id"));
  c->bos_token_id = bos.empty() ? -1 : bos[0];
  MOE_ASSIGN_OR_RETURN(c->eos_token_ids, r.IntList("eos_token_id"));
  MOE_ASSIGN_OR_RETURN(c->expert_clusters, r.Int("moeserve_expert_clusters", 0));

  // Features we do not implement: refuse rather than run a different model.
  std::string act;
  MOE_ASSIGN_OR_RETURN(act, r.String("hidden_act", "silu"));
  if (act != "silu") return r.Unsupported("hidden_act", "'" + act + "'; only silu");
  if (r.Has("rope_scaling"))
    return r.Unsupported("rope_scaling", "rope scaling is not implemented");
  bool use_sliding_window = false;
  MOE_ASSIGN_OR_RETURN(use_sliding_window, r.Bool("use_sliding_window", false));
  if (use_sliding_window) return r.Unsupported("use_sliding_window", "sliding-window attention");
  if (c->arch == ModelArch::kMixtral && r.Has("sliding_window")) {
    int window = 0;
    MOE_ASSIGN_OR_RETURN(window, r.Int("sliding_window", 0));
    if (window < c->max_position_embeddings) {
      return r.Unsupported("sliding_window", "a window shorter than max_position_embeddings");
    }
  }
  if (c->arch == ModelArch::kOlmoe && r.Has("clip_qkv")) {
    return r.Unsupported("clip_qkv", "q/k/v clipping");
  }
  return c->Validate();
}

}  // namespace

std::string_view ModelArchName(ModelArch arch) {
  for (const ArchDefaults& a : kArchs) {
    if (a.arch == arch) return a.model_type;
  }
  return "?";
}

StatusOr<ModelConfig> ModelConfig::FromJson(const std::string& json_text,
                                            const std::string& source) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    return InvalidArgument(source, ": not valid JSON: ", e.what());
  }
  ModelConfig config;
  MOE_RETURN_IF_ERROR(ParseInto(root, source, &config));
  return config;
}

StatusOr<ModelConfig> ModelConfig::FromDirectory(const std::string& dir) {
  const std::string path = dir + "/config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path, ": cannot open (is this a Hugging Face model directory?)");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return DataLoss(path, ": read error");
  return FromJson(text.str(), path);
}

Status ModelConfig::Validate() const {
  auto positive = [](const char* name, int64_t v) -> Status {
    if (v <= 0) return InvalidArgument("config: field '", name, "' must be positive, got ", v);
    return OkStatus();
  };
  MOE_RETURN_IF_ERROR(positive("hidden_size", hidden_size));
  MOE_RETURN_IF_ERROR(positive("num_hidden_layers", num_layers));
  MOE_RETURN_IF_ERROR(positive("num_attention_heads", num_heads));
  MOE_RETURN_IF_ERROR(positive("num_key_value_heads", num_kv_heads));
  MOE_RETURN_IF_ERROR(positive("head_dim", head_dim));
  MOE_RETURN_IF_ERROR(positive("vocab_size", vocab_size));
  MOE_RETURN_IF_ERROR(positive("max_position_embeddings", max_position_embeddings));
  MOE_RETURN_IF_ERROR(positive("num_experts", num_experts));
  MOE_RETURN_IF_ERROR(positive("num_experts_per_tok", num_experts_per_tok));
  MOE_RETURN_IF_ERROR(positive("moe_intermediate_size", moe_intermediate_size));
  MOE_RETURN_IF_ERROR(positive("decoder_sparse_step", decoder_sparse_step));
  if (head_dim % 2 != 0) {
    return InvalidArgument("config: field 'head_dim' must be even for RoPE, got ", head_dim);
  }
  if (num_heads % num_kv_heads != 0) {
    return InvalidArgument("config: field 'num_attention_heads' (", num_heads,
                           ") must be a multiple of 'num_key_value_heads' (", num_kv_heads, ")");
  }
  if (num_experts_per_tok > num_experts) {
    return InvalidArgument("config: field 'num_experts_per_tok' (", num_experts_per_tok,
                           ") exceeds the number of experts (", num_experts, ")");
  }
  if (!(rope_theta > 0)) {
    return InvalidArgument("config: field 'rope_theta' must be positive, got ", rope_theta);
  }
  if (!(rms_norm_eps > 0)) {
    return InvalidArgument("config: field 'rms_norm_eps' must be positive, got ", rms_norm_eps);
  }
  if (shared_expert_intermediate_size < 0) {
    return InvalidArgument("config: field 'shared_expert_intermediate_size' must be >= 0");
  }
  for (int layer : mlp_only_layers) {
    if (layer < 0 || layer >= num_layers) {
      return InvalidArgument("config: field 'mlp_only_layers' names layer ", layer, " of ",
                             num_layers);
    }
  }
  for (int layer = 0; layer < num_layers; ++layer) {
    if (!IsMoeLayer(layer) && intermediate_size <= 0) {
      return InvalidArgument("config: layer ", layer,
                             " is a dense MLP layer but field 'intermediate_size' is not positive");
    }
  }
  for (int id : eos_token_ids) {
    if (id < 0 || id >= vocab_size) {
      return InvalidArgument("config: field 'eos_token_id' (", id, ") is outside the vocabulary (",
                             vocab_size, ")");
    }
  }
  if (bos_token_id >= vocab_size) {
    return InvalidArgument("config: field 'bos_token_id' (", bos_token_id,
                           ") is outside the vocabulary (", vocab_size, ")");
  }
  return OkStatus();
}

bool ModelConfig::IsMoeLayer(int layer) const {
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end()) {
    return false;
  }
  return (layer + 1) % decoder_sparse_step == 0;
}

int64_t ModelConfig::CountParameters(int experts_counted) const {
  const int64_t h = hidden_size;
  int64_t total = static_cast<int64_t>(vocab_size) * h * (tie_word_embeddings ? 1 : 2) + h;
  for (int layer = 0; layer < num_layers; ++layer) {
    total += h * (q_size() + 2 * kv_size()) + q_size() * h + 2 * h;
    if (qkv_bias) total += q_size() + 2 * kv_size();
    if (qk_norm == QkNormKind::kPerHead) total += 2 * head_dim;
    if (qk_norm == QkNormKind::kFull) total += q_size() + kv_size();
    if (IsMoeLayer(layer)) {
      // The router sees every expert; only `experts_counted` experts' weights are counted.
      total += static_cast<int64_t>(num_experts) * h +
               static_cast<int64_t>(experts_counted) * 3 * h * moe_intermediate_size;
      if (shared_expert_intermediate_size > 0) {
        total += 3 * h * shared_expert_intermediate_size + h;
      }
    } else {
      total += 3 * h * intermediate_size;
    }
  }
  return total;
}

int64_t ModelConfig::TotalParameters() const { return CountParameters(num_experts); }

int64_t ModelConfig::ActiveParameters() const { return CountParameters(num_experts_per_tok); }

std::ostream& operator<<(std::ostream& os, const ModelConfig& c) {
  return os << ModelArchName(c.arch) << "{hidden=" << c.hidden_size << " layers=" << c.num_layers
            << " heads=" << c.num_heads << "/" << c.num_kv_heads << "x" << c.head_dim
            << " vocab=" << c.vocab_size << " experts=" << c.num_experts << " top"
            << c.num_experts_per_tok << " F=" << c.moe_intermediate_size
            << " norm_topk=" << c.norm_topk_prob << " tied=" << c.tie_word_embeddings << "}";
}

}  // namespace moe::model
