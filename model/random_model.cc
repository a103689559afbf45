#include "model/random_model.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/bf16.h"
#include "core/hash.h"
#include "core/logging.h"
#include "core/thread_pool.h"
#include "model/embedded_tokenizer_files.h"
#include "model/safetensors.h"
#include "model/weight_names.h"

namespace moe::model {
namespace {

ModelConfig BaseQwen3() {
  ModelConfig c;
  c.arch = ModelArch::kQwen3Moe;
  c.model_type = "qwen3_moe";
  c.architecture = "Qwen3MoeForCausalLM";
  c.rope_theta = 1000000.0;
  c.rms_norm_eps = 1e-6;
  c.norm_topk_prob = true;
  c.qk_norm = QkNormKind::kPerHead;
  c.router = RouterKind::kSoftmaxTopK;
  c.torch_dtype = DType::kBF16;
  c.max_position_embeddings = 32768;
  return c;
}

inline uint64_t Draw(uint64_t seed, uint64_t stream, uint64_t index) {
  return Mix64(seed * 0x9e3779b97f4a7c15ULL + Mix64(stream + 0x632be59bd9b4e019ULL) + index);
}

// Inverse of the standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9).
double InverseNormalCdf(double p) {
  static constexpr double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                                 -2.759285104469687e+02, 1.383577518672690e+02,
                                 -3.066479806614716e+01, 2.506628277459239e+00};
  static constexpr double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                                 -1.556989798598866e+02, 6.680131188771972e+01,
                                 -1.328068155288572e+01};
  static constexpr double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                                 -2.400758277161838e+00, -2.549732539343734e+00,
                                 4.374664141464968e+00,  2.938163982698783e+00};
  static constexpr double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
                                 2.445134137142996e+00, 3.754408661907416e+00};
  constexpr double kLow = 0.02425;
  if (p < kLow) {
    const double q = std::sqrt(-2 * std::log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - kLow) {
    const double q = std::sqrt(-2 * std::log(1 - p));
    return -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  const double q = p - 0.5;
  const double r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
         (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

// A standard normal draw for element `index` of stream `stream`.
inline float StandardNormal(uint64_t seed, uint64_t stream, uint64_t index) {
  const uint64_t bits = Draw(seed, stream, index);
  const double u = (static_cast<double>(bits >> 11) + 0.5) * (1.0 / 9007199254740992.0);
  return static_cast<float>(InverseNormalCdf(u));
}

constexpr float kWeightStd = 0.02f;
constexpr float kNormStd = 0.05f;
constexpr uint64_t kCentreStream = 1ULL << 40;

struct Generator {
  const ModelConfig& config;
  uint64_t seed;
  int num_clusters;
  ThreadPool* pool;

  int ClusterOfToken(int64_t token) const {
    return static_cast<int>(token * num_clusters / config.vocab_size);
  }
  int ClusterOfExpert(int expert) const { return expert % num_clusters; }
  float Centre(int cluster, int64_t i) const {
    return StandardNormal(seed, kCentreStream + cluster, i);
  }

  // Value of element `i` (row-major) of tensor number `stream` with spec `spec`.
  float Value(const WeightSpec& spec, uint64_t stream, int64_t i) const {
    const float z = StandardNormal(seed, stream, i);
    if (IsNormRole(spec.role)) return 1.0f + kNormStd * z;
    if (num_clusters > 0 && spec.role == WeightRole::kEmbed) {
      const int64_t h = config.hidden_size;
      return Centre(ClusterOfToken(i / h), i % h) + 0.3f * z;
    }
    if (num_clusters > 0 && spec.role == WeightRole::kRouter) {
      const int64_t h = config.hidden_size;
      const float beta = 0.2f / std::sqrt(static_cast<float>(h));
      return beta * Centre(ClusterOfExpert(static_cast<int>(i / h)), i % h) + kWeightStd * z;
    }
    return kWeightStd * z;
  }

  void Fill(const WeightSpec& spec, uint64_t stream, void* out) const {
    int64_t n = 1;
    for (int64_t d : spec.shape) n *= d;
    Bf16* dst = static_cast<Bf16*>(out);
    pool->ParallelFor(
        n,
        [&](int64_t begin, int64_t end, int) {
          for (int64_t i = begin; i < end; ++i) dst[i] = ToBf16(Value(spec, stream, i));
        },
        // Many chunks so that the threads stay busy on tensors of any size.
        static_cast<int>(std::min<int64_t>(n / 4096 + 1, 64)));
  }
};

// The demo preset's tokenizer: Qwen3's files as embedded at build time.
Status WriteDemoTokenizer(const std::string& out_dir) {
  const std::vector<EmbeddedFile> files = EmbeddedQwen3TokenizerFiles();
  if (files.empty()) {
    MOE_LOG(WARNING) << "this build has no embedded Qwen3 tokenizer (node_modules was missing at "
                        "configure time): the demo model in "
                     << out_dir << " serves token ids only";
    return OkStatus();
  }
  for (const EmbeddedFile& file : files) {
    const std::string path = out_dir + "/" + std::string(file.name);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(file.contents.data(), static_cast<std::streamsize>(file.contents.size()));
    if (!out) return DataLoss(path, ": write failed");
  }
  return OkStatus();
}

}  // namespace

std::vector<std::string> PresetNames() { return {"tiny", "bench", "demo"}; }

StatusOr<ModelConfig> PresetConfig(const std::string& preset) {
  ModelConfig c = BaseQwen3();
  if (preset == "tiny") {
    c.hidden_size = 256;
    c.num_layers = 4;
    c.num_experts = 8;
    c.num_experts_per_tok = 2;
    c.moe_intermediate_size = 256;
    c.intermediate_size = 512;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 64;
    c.vocab_size = 512;
    c.bos_token_id = 1;
    c.eos_token_ids = {2};
  } else if (preset == "bench") {
    c.hidden_size = 1024;
    c.num_layers = 16;
    c.num_experts = 64;
    c.num_experts_per_tok = 8;
    c.moe_intermediate_size = 512;
    c.intermediate_size = 2048;
    c.num_heads = 16;
    c.num_kv_heads = 4;
    c.head_dim = 64;
    c.vocab_size = 32000;
    c.bos_token_id = 1;
    c.eos_token_ids = {2};
  } else if (preset == "demo") {
    // Qwen3's vocabulary (151,669 ids padded to 151,936 as Qwen3 does) with a small MoE body, and
    // Qwen3's tokenizer; bos/eos as in Qwen3's config.json and generation_config.json
    // (<|endoftext|> = 151643, <|im_end|> = 151645, the eos of tokenizer_config.json).
    c.hidden_size = 512;
    c.num_layers = 8;
    c.num_experts = 32;
    c.num_experts_per_tok = 4;
    c.moe_intermediate_size = 256;
    c.intermediate_size = 1024;
    c.num_heads = 8;
    c.num_kv_heads = 2;
    c.head_dim = 64;
    c.vocab_size = 151936;
    c.tie_word_embeddings = true;
    c.max_position_embeddings = 40960;
    c.bos_token_id = 151643;
    c.eos_token_ids = {151645, 151643};
  } else {
    return InvalidArgument("unknown preset '", preset, "'; known presets: tiny, bench, demo");
  }
  MOE_RETURN_IF_ERROR(c.Validate());
  return c;
}

std::string ConfigJson(const ModelConfig& c, int num_clusters) {
  nlohmann::ordered_json j;
  j["architectures"] = {c.architecture};
  j["model_type"] = c.model_type;
  j["attention_bias"] = c.qkv_bias;
  j["attention_dropout"] = 0.0;
  j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_ids.size() == 1) {
    j["eos_token_id"] = c.eos_token_ids[0];
  } else {
    j["eos_token_id"] = c.eos_token_ids;
  }
  j["decoder_sparse_step"] = c.decoder_sparse_step;
  j["head_dim"] = c.head_dim;
  j["hidden_act"] = "silu";
  j["hidden_size"] = c.hidden_size;
  j["initializer_range"] = kWeightStd;
  j["intermediate_size"] = c.intermediate_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["max_window_layers"] = c.num_layers;
  j["mlp_only_layers"] = c.mlp_only_layers;
  j["moe_intermediate_size"] = c.moe_intermediate_size;
  j["norm_topk_prob"] = c.norm_topk_prob;
  j["num_attention_heads"] = c.num_heads;
  j["num_experts"] = c.num_experts;
  j["num_experts_per_tok"] = c.num_experts_per_tok;
  j["num_hidden_layers"] = c.num_layers;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["output_router_logits"] = false;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_scaling"] = nullptr;
  j["rope_theta"] = c.rope_theta;
  j["router_aux_loss_coef"] = 0.001;
  j["sliding_window"] = nullptr;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["torch_dtype"] = "bfloat16";
  j["transformers_version"] = "4.51.0";
  j["use_cache"] = true;
  j["use_sliding_window"] = false;
  j["vocab_size"] = c.vocab_size;
  if (num_clusters > 0) j["moeserve_expert_clusters"] = num_clusters;
  return j.dump(2) + "\n";
}

Status GenerateRandomModel(const RandomModelOptions& options) {
  MOE_ASSIGN_OR_RETURN(ModelConfig config, PresetConfig(options.preset));
  if (options.out_dir.empty()) return InvalidArgument("--out: an output directory is required");
  if (options.num_clusters < 0 || options.num_clusters > config.num_experts) {
    return InvalidArgument("--clusters must be in [0, num_experts=", config.num_experts, "]");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.out_dir, ec);
  if (ec) return InvalidArgument(options.out_dir, ": cannot create directory: ", ec.message());

  const std::string config_path = options.out_dir + "/config.json";
  {
    std::ofstream out(config_path, std::ios::binary | std::ios::trunc);
    out << ConfigJson(config, options.num_clusters);
    if (!out) return DataLoss(config_path, ": write failed");
  }

  if (options.preset == "demo") MOE_RETURN_IF_ERROR(WriteDemoTokenizer(options.out_dir));

  ThreadPool pool(options.num_threads > 0 ? options.num_threads
                                          : ThreadPool::HardwareConcurrency());
  Generator gen{config, options.seed, options.num_clusters, &pool};
  const std::vector<WeightSpec> specs = ExpectedWeights(config);
  std::vector<TensorToWrite> tensors;
  tensors.reserve(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const WeightSpec* spec = &specs[i];
    tensors.push_back(TensorToWrite{spec->name, DType::kBF16, spec->shape,
                                    [&gen, spec, i](void* out) { gen.Fill(*spec, i, out); }});
  }
  return WriteSafetensors(options.out_dir + "/model.safetensors", tensors, {{"format", "pt"}});
}

}  // namespace moe::model
