#include "model/random_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/bf16.h"
#include "model/model_weights.h"
#include "model/safetensors.h"
#include "model/weight_names.h"
#include "tests/testing/test_models.h"

namespace moe::model {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void ExpectConfigsEqual(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.arch, b.arch);
  EXPECT_EQ(a.model_type, b.model_type);
  EXPECT_EQ(a.architecture, b.architecture);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.num_layers, b.num_layers);
  EXPECT_EQ(a.num_heads, b.num_heads);
  EXPECT_EQ(a.num_kv_heads, b.num_kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rms_norm_eps, b.rms_norm_eps);
  EXPECT_EQ(a.num_experts, b.num_experts);
  EXPECT_EQ(a.num_experts_per_tok, b.num_experts_per_tok);
  EXPECT_EQ(a.moe_intermediate_size, b.moe_intermediate_size);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.norm_topk_prob, b.norm_topk_prob);
  EXPECT_EQ(a.decoder_sparse_step, b.decoder_sparse_step);
  EXPECT_EQ(a.mlp_only_layers, b.mlp_only_layers);
  EXPECT_EQ(a.shared_expert_intermediate_size, b.shared_expert_intermediate_size);
  EXPECT_EQ(a.qkv_bias, b.qkv_bias);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_EQ(a.router, b.router);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.torch_dtype, b.torch_dtype);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_ids, b.eos_token_ids);
}

// A bf16 tensor of a checkpoint decoded to floats.
std::vector<float> Floats(const TensorEntry& t) {
  EXPECT_EQ(t.dtype, DType::kBF16) << t.name;
  const auto* bits = static_cast<const uint16_t*>(t.data);
  std::vector<float> out(static_cast<size_t>(t.NumElements()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = Bf16BitsToFloat(bits[i]);
  return out;
}

struct Moments {
  double mean = 0;
  double std = 0;
};

Moments MomentsOf(const std::vector<float>& v) {
  double sum = 0, sum2 = 0;
  for (float x : v) sum += x;
  const double mean = sum / static_cast<double>(v.size());
  for (float x : v) sum2 += (x - mean) * (x - mean);
  return {mean, std::sqrt(sum2 / static_cast<double>(v.size()))};
}

double Cosine(const float* a, const float* b, int64_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < n; ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

std::unique_ptr<Checkpoint> OpenCheckpoint(const std::string& dir) {
  StatusOr<std::unique_ptr<Checkpoint>> c = Checkpoint::Open(dir);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(*c) : nullptr;
}

Status Generate(const std::string& preset, uint64_t seed, int threads, int clusters,
                const std::string& dir) {
  RandomModelOptions options;
  options.preset = preset;
  options.seed = seed;
  options.num_threads = threads;
  options.num_clusters = clusters;
  options.out_dir = dir;
  return GenerateRandomModel(options);
}

// ---------------------------------------------------------------------------------------------
// Presets

TEST(PresetConfigTest, Tiny) {
  StatusOr<ModelConfig> c = PresetConfig("tiny");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->arch, ModelArch::kQwen3Moe);
  EXPECT_EQ(c->model_type, "qwen3_moe");
  EXPECT_EQ(c->architecture, "Qwen3MoeForCausalLM");
  EXPECT_EQ(c->hidden_size, 256);
  EXPECT_EQ(c->num_layers, 4);
  EXPECT_EQ(c->num_experts, 8);
  EXPECT_EQ(c->num_experts_per_tok, 2);
  EXPECT_EQ(c->moe_intermediate_size, 256);
  EXPECT_EQ(c->num_heads, 4);
  EXPECT_EQ(c->num_kv_heads, 2);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->vocab_size, 512);
  EXPECT_EQ(c->qk_norm, QkNormKind::kPerHead);
  EXPECT_EQ(c->torch_dtype, DType::kBF16);
  EXPECT_TRUE(c->norm_topk_prob);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->bos_token_id, 1);
  EXPECT_EQ(c->eos_token_ids, std::vector<int>{2});
  for (int l = 0; l < 4; ++l) EXPECT_TRUE(c->IsMoeLayer(l));
  EXPECT_TRUE(c->Validate().ok());
}

TEST(PresetConfigTest, Bench) {
  StatusOr<ModelConfig> c = PresetConfig("bench");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hidden_size, 1024);
  EXPECT_EQ(c->num_layers, 16);
  EXPECT_EQ(c->num_experts, 64);
  EXPECT_EQ(c->num_experts_per_tok, 8);
  EXPECT_EQ(c->moe_intermediate_size, 512);
  EXPECT_EQ(c->num_heads, 16);
  EXPECT_EQ(c->num_kv_heads, 4);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->vocab_size, 32000);
  // ~1.7B total, ~0.3B active.
  EXPECT_GT(c->TotalParameters(), 1.65e9);
  EXPECT_LT(c->TotalParameters(), 1.75e9);
  EXPECT_GT(c->ActiveParameters(), 0.28e9);
  EXPECT_LT(c->ActiveParameters(), 0.33e9);
  EXPECT_TRUE(c->Validate().ok());
}

TEST(PresetConfigTest, Demo) {
  StatusOr<ModelConfig> c = PresetConfig("demo");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hidden_size, 512);
  EXPECT_EQ(c->num_layers, 8);
  EXPECT_EQ(c->num_experts, 32);
  EXPECT_EQ(c->num_experts_per_tok, 4);
  EXPECT_EQ(c->moe_intermediate_size, 256);
  EXPECT_EQ(c->num_heads, 8);
  EXPECT_EQ(c->num_kv_heads, 2);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->vocab_size, 151936);  // Qwen3's padded vocabulary
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->max_position_embeddings, 40960);
  EXPECT_EQ(c->bos_token_id, 151643);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int>{151645, 151643}));
}

TEST(PresetConfigTest, UnknownPresetListsKnownOnes) {
  EXPECT_EQ(PresetNames(), (std::vector<std::string>{"tiny", "bench", "demo"}));
  StatusOr<ModelConfig> c = PresetConfig("huge");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string msg = StatusMessage(c.status());
  for (const char* s : {"'huge'", "tiny", "bench", "demo"}) {
    EXPECT_NE(msg.find(s), std::string::npos) << s << " not in " << msg;
  }
  EXPECT_FALSE(PresetConfig("").ok());
  EXPECT_FALSE(PresetConfig("Tiny").ok());
}

TEST(PresetConfigTest, ConfigJsonRoundTripsForEveryPreset) {
  for (const std::string& preset : PresetNames()) {
    SCOPED_TRACE(preset);
    StatusOr<ModelConfig> c = PresetConfig(preset);
    ASSERT_TRUE(c.ok());
    const std::string text = ConfigJson(*c, 0);
    StatusOr<ModelConfig> back = ModelConfig::FromJson(text, preset + "/config.json");
    ASSERT_TRUE(back.ok()) << back.status();
    ExpectConfigsEqual(*back, *c);
    const nlohmann::json j = nlohmann::json::parse(text);
    EXPECT_EQ(j.at("model_type"), "qwen3_moe");
    EXPECT_EQ(j.at("architectures"), nlohmann::json::array({"Qwen3MoeForCausalLM"}));
    EXPECT_EQ(j.at("torch_dtype"), "bfloat16");
    EXPECT_FALSE(j.contains("moeserve_expert_clusters"));
    // A single eos id is written as an int, several as a list (as HF does).
    if (c->eos_token_ids.size() == 1) {
      EXPECT_TRUE(j.at("eos_token_id").is_number_integer());
    } else {
      EXPECT_TRUE(j.at("eos_token_id").is_array());
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Generation

TEST(GenerateRandomModelTest, TinyOpensAndBinds) {
  const std::string& dir = moe::testing::PresetModelDir("tiny");
  StatusOr<std::unique_ptr<LoadedModel>> loaded = OpenModelDirectory(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const ModelConfig& c = (*loaded)->config;
  ExpectConfigsEqual(c, *PresetConfig("tiny"));
  const std::vector<WeightSpec> specs = ExpectedWeights(c);
  EXPECT_EQ((*loaded)->checkpoint->num_tensors(), specs.size());
  for (const WeightSpec& s : specs) {
    const TensorEntry* t = (*loaded)->checkpoint->Find(s.name);
    ASSERT_NE(t, nullptr) << s.name;
    EXPECT_EQ(t->dtype, DType::kBF16) << s.name;
    EXPECT_EQ(t->shape, s.shape) << s.name;
  }
  const ModelWeights& w = (*loaded)->weights;
  ASSERT_EQ(w.layers.size(), 4u);
  EXPECT_NE(w.lm_head, w.embed);
  EXPECT_EQ(w.layers[3].expert_down.size(), 8u);
  EXPECT_NE(w.layers[3].expert_down[7], nullptr);
  EXPECT_EQ((*loaded)->checkpoint->TotalBytes(), static_cast<size_t>(c.TotalParameters()) * 2);
}

TEST(GenerateRandomModelTest, ConfigJsonContents) {
  const std::string& dir = moe::testing::PresetModelDir("tiny");
  const nlohmann::json j = nlohmann::json::parse(ReadAll(dir + "/config.json"));
  EXPECT_EQ(j.at("model_type"), "qwen3_moe");
  EXPECT_EQ(j.at("architectures"), nlohmann::json::array({"Qwen3MoeForCausalLM"}));
  EXPECT_EQ(j.at("torch_dtype"), "bfloat16");
  EXPECT_EQ(j.at("hidden_size"), 256);
  EXPECT_EQ(j.at("eos_token_id"), 2);
  EXPECT_TRUE(j.at("rope_scaling").is_null());
  EXPECT_EQ(j.at("use_sliding_window"), false);
  StatusOr<ModelConfig> parsed = ModelConfig::FromJson(ReadAll(dir + "/config.json"), "c.json");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectConfigsEqual(*parsed, *PresetConfig("tiny"));

  StatusOr<std::unique_ptr<SafetensorsFile>> file =
      SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
}

TEST(GenerateRandomModelTest, DeterministicAcrossThreadCountsAndSeedsDiffer) {
  const std::string a = moe::testing::MakeScratchDir("gen_seed7_t1");
  const std::string b = moe::testing::MakeScratchDir("gen_seed7_t2");
  const std::string d = moe::testing::MakeScratchDir("gen_seed8_t2");
  ASSERT_TRUE(Generate("tiny", 7, 1, 0, a).ok());
  ASSERT_TRUE(Generate("tiny", 7, 2, 0, b).ok());
  ASSERT_TRUE(Generate("tiny", 8, 2, 0, d).ok());
  const std::string bytes_a = ReadAll(a + "/model.safetensors");
  const std::string bytes_b = ReadAll(b + "/model.safetensors");
  const std::string bytes_d = ReadAll(d + "/model.safetensors");
  ASSERT_GT(bytes_a.size(), 1000000u);
  EXPECT_TRUE(bytes_a == bytes_b) << "same seed, 1 vs 2 threads: files differ";
  EXPECT_EQ(ReadAll(a + "/config.json"), ReadAll(b + "/config.json"));
  ASSERT_EQ(bytes_a.size(), bytes_d.size());  // same header / layout
  EXPECT_FALSE(bytes_a == bytes_d) << "different seeds gave identical weights";
  // Different seeds differ in (nearly) every tensor, not just somewhere.
  auto ca = OpenCheckpoint(a);
  auto cd = OpenCheckpoint(d);
  ASSERT_NE(ca, nullptr);
  ASSERT_NE(cd, nullptr);
  for (const std::string& name : ca->Names()) {
    const TensorEntry* x = ca->Find(name);
    const TensorEntry* y = cd->Find(name);
    ASSERT_NE(y, nullptr);
    EXPECT_NE(std::memcmp(x->data, y->data, x->num_bytes), 0) << name;
  }
  // Regenerating into the same directory reproduces the same bytes.
  ca.reset();  // unmap before the file is rewritten
  cd.reset();
  ASSERT_TRUE(Generate("tiny", 7, 2, 0, a).ok());
  EXPECT_TRUE(ReadAll(a + "/model.safetensors") == bytes_a);
  for (const std::string& dir : {a, b, d}) std::filesystem::remove_all(dir);
}

TEST(GenerateRandomModelTest, WeightStatistics) {
  auto ckpt = OpenCheckpoint(moe::testing::PresetModelDir("tiny"));
  ASSERT_NE(ckpt, nullptr);
  // Matrices: N(0, 0.02^2). n = 65536 or 131072: the mean's sampling std is ~8e-5, the std's
  // relative sampling std ~0.3%.
  for (const char* name : {"model.embed_tokens.weight", "lm_head.weight",
                           "model.layers.0.mlp.experts.0.gate_proj.weight",
                           "model.layers.3.mlp.experts.7.down_proj.weight",
                           "model.layers.2.self_attn.q_proj.weight"}) {
    SCOPED_TRACE(name);
    const TensorEntry* t = ckpt->Find(name);
    ASSERT_NE(t, nullptr);
    const std::vector<float> v = Floats(*t);
    ASSERT_GE(v.size(), 65536u);
    const Moments m = MomentsOf(v);
    EXPECT_LT(std::fabs(m.mean), 5 * 0.02 / std::sqrt(static_cast<double>(v.size())));
    EXPECT_NEAR(m.std, 0.02, 0.02 * 0.015);
    // Gaussian shape: ~68.3% within one std, ~95.4% within two.
    int64_t within1 = 0, within2 = 0;
    for (float x : v) {
      within1 += std::fabs(x) < 0.02f;
      within2 += std::fabs(x) < 0.04f;
    }
    EXPECT_NEAR(static_cast<double>(within1) / v.size(), 0.6827, 0.01);
    EXPECT_NEAR(static_cast<double>(within2) / v.size(), 0.9545, 0.005);
  }
  // Norm weights: 1 + 0.05 z.
  std::vector<float> norms;
  for (const std::string& name : ckpt->Names()) {
    if (name.find("norm") == std::string::npos) continue;
    const std::vector<float> v = Floats(*ckpt->Find(name));
    norms.insert(norms.end(), v.begin(), v.end());
  }
  ASSERT_EQ(norms.size(), 4u * (256 + 256 + 64 + 64) + 256);
  for (float x : norms) {
    ASSERT_GT(x, 0.7f);
    ASSERT_LT(x, 1.3f);
  }
  const Moments m = MomentsOf(norms);
  EXPECT_NEAR(m.mean, 1.0, 0.005);
  EXPECT_NEAR(m.std, 0.05, 0.005);
}

TEST(GenerateRandomModelTest, TensorsAreIndependent) {
  auto ckpt = OpenCheckpoint(moe::testing::PresetModelDir("tiny"));
  ASSERT_NE(ckpt, nullptr);
  const std::vector<float> a = Floats(*ckpt->Find("model.layers.0.mlp.experts.0.gate_proj.weight"));
  const std::vector<float> b = Floats(*ckpt->Find("model.layers.0.mlp.experts.1.gate_proj.weight"));
  const std::vector<float> c = Floats(*ckpt->Find("model.layers.1.mlp.experts.0.gate_proj.weight"));
  ASSERT_EQ(a.size(), b.size());
  // Uncorrelated: |cos| ~ 1/sqrt(65536) = 0.004.
  EXPECT_LT(std::fabs(Cosine(a.data(), b.data(), static_cast<int64_t>(a.size()))), 0.02);
  EXPECT_LT(std::fabs(Cosine(a.data(), c.data(), static_cast<int64_t>(a.size()))), 0.02);
  // Rows of one matrix are not copies of each other.
  EXPECT_LT(std::fabs(Cosine(a.data(), a.data() + 256, 256)), 0.3);
}

TEST(GenerateRandomModelTest, ClustersSpecialiseEmbeddingsAndRouters) {
  constexpr int kClusters = 4;
  const std::string& dir = moe::testing::PresetModelDir("tiny", 0, kClusters);
  const nlohmann::json j = nlohmann::json::parse(ReadAll(dir + "/config.json"));
  EXPECT_EQ(j.at("moeserve_expert_clusters"), kClusters);
  StatusOr<std::unique_ptr<LoadedModel>> loaded = OpenModelDirectory(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const ModelConfig& c = (*loaded)->config;
  const int64_t h = c.hidden_size;
  const int vocab = c.vocab_size;
  const std::vector<float> embed = Floats(*(*loaded)->weights.embed);
  auto cluster_of_token = [&](int t) { return static_cast<int>(int64_t{t} * kClusters / vocab); };

  // Token embeddings: same cluster => cosine ~ 1 / (1 + 0.3^2) = 0.92; different => ~0.
  double same_sum = 0, cross_sum = 0, same_min = 1, cross_max = -1;
  int same_n = 0, cross_n = 0;
  for (int a = 0; a < vocab; a += 7) {
    for (int b = a + 1; b < vocab; b += 13) {
      const double cos = Cosine(&embed[a * h], &embed[b * h], h);
      if (cluster_of_token(a) == cluster_of_token(b)) {
        same_sum += cos;
        ++same_n;
        same_min = std::min(same_min, cos);
      } else {
        cross_sum += cos;
        ++cross_n;
        cross_max = std::max(cross_max, cos);
      }
    }
  }
  ASSERT_GT(same_n, 100);
  ASSERT_GT(cross_n, 100);
  EXPECT_GT(same_sum / same_n, 0.85);
  EXPECT_LT(std::fabs(cross_sum / cross_n), 0.1);
  EXPECT_GT(same_min, 0.7);
  EXPECT_LT(cross_max, 0.4);
  // The boundary is exactly where token * C / vocab changes: 127 | 128 for vocab 512, C = 4.
  EXPECT_GT(Cosine(&embed[126 * h], &embed[127 * h], h), 0.7);
  EXPECT_LT(Cosine(&embed[127 * h], &embed[128 * h], h), 0.4);

  // Cluster centres, estimated as the mean embedding of each cluster's tokens.
  std::vector<std::vector<double>> centre(kClusters, std::vector<double>(h, 0.0));
  std::vector<int> count(kClusters, 0);
  for (int t = 0; t < vocab; ++t) {
    const int k = cluster_of_token(t);
    ++count[k];
    for (int64_t i = 0; i < h; ++i) centre[k][i] += embed[t * h + i];
  }
  std::vector<std::vector<float>> centre_f(kClusters, std::vector<float>(h));
  for (int k = 0; k < kClusters; ++k) {
    EXPECT_EQ(count[k], vocab / kClusters);
    for (int64_t i = 0; i < h; ++i) centre_f[k][i] = static_cast<float>(centre[k][i] / count[k]);
  }

  // Router rows: expert e follows the centre of cluster e % C (signal 0.2/sqrt(H) per element
  // against noise 0.02: cosine ~0.53), and is uncorrelated with the other centres.
  for (int layer = 0; layer < c.num_layers; ++layer) {
    const std::vector<float> router = Floats(*(*loaded)->weights.layers[layer].router);
    ASSERT_EQ(static_cast<int64_t>(router.size()), c.num_experts * h);
    for (int e = 0; e < c.num_experts; ++e) {
      SCOPED_TRACE(::testing::Message() << "layer " << layer << " expert " << e);
      for (int k = 0; k < kClusters; ++k) {
        const double cos = Cosine(&router[e * h], centre_f[k].data(), h);
        if (k == e % kClusters) {
          EXPECT_GT(cos, 0.35);
        } else {
          EXPECT_LT(std::fabs(cos), 0.25);
        }
      }
    }
  }

  // Without clusters there is no such structure.
  auto plain = OpenCheckpoint(moe::testing::PresetModelDir("tiny"));
  const std::vector<float> plain_embed = Floats(*plain->Find("model.embed_tokens.weight"));
  EXPECT_LT(std::fabs(Cosine(&plain_embed[0], &plain_embed[h], h)), 0.3);
}

TEST(GenerateRandomModelTest, ClustersOnlyChangeEmbeddingAndRouters) {
  auto plain = OpenCheckpoint(moe::testing::PresetModelDir("tiny"));
  auto clustered = OpenCheckpoint(moe::testing::PresetModelDir("tiny", 0, 4));
  ASSERT_NE(plain, nullptr);
  ASSERT_NE(clustered, nullptr);
  for (const std::string& name : plain->Names()) {
    const TensorEntry* a = plain->Find(name);
    const TensorEntry* b = clustered->Find(name);
    ASSERT_NE(b, nullptr);
    const bool changed = std::memcmp(a->data, b->data, a->num_bytes) != 0;
    const bool should_change =
        name == "model.embed_tokens.weight" || name.find(".mlp.gate.weight") != std::string::npos;
    EXPECT_EQ(changed, should_change) << name;
  }
}

TEST(GenerateRandomModelTest, OptionErrors) {
  const std::string dir = moe::testing::MakeScratchDir("gen_errors");
  Status s = Generate("tiny", 0, 1, 0, "");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(StatusMessage(s).find("--out"), std::string::npos) << s;

  s = Generate("nope", 0, 1, 0, dir);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(StatusMessage(s).find("'nope'"), std::string::npos) << s;

  s = Generate("tiny", 0, 1, 9, dir);  // tiny has 8 experts
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(StatusMessage(s).find("--clusters"), std::string::npos) << s;
  s = Generate("tiny", 0, 1, -1, dir);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  // Nothing was written for rejected options.
  EXPECT_FALSE(std::ifstream(dir + "/model.safetensors").good());
}

}  // namespace
}  // namespace moe::model
