#include "model/model_config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/testing/test_models.h"

namespace moe::model {
namespace {

using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Real config.json files (field sets as published on the Hugging Face hub).

json Qwen3_30B_A3B() {
  return json::parse(R"({
  "architectures": ["Qwen3MoeForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "decoder_sparse_step": 1,
  "eos_token_id": 151645,
  "head_dim": 128,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 6144,
  "max_position_embeddings": 40960,
  "max_window_layers": 48,
  "mlp_only_layers": [],
  "model_type": "qwen3_moe",
  "moe_intermediate_size": 768,
  "norm_topk_prob": true,
  "num_attention_heads": 32,
  "num_experts": 128,
  "num_experts_per_tok": 8,
  "num_hidden_layers": 48,
  "num_key_value_heads": 4,
  "output_router_logits": false,
  "rms_norm_eps": 1e-06,
  "rope_scaling": null,
  "rope_theta": 1000000.0,
  "router_aux_loss_coef": 0.001,
  "sliding_window": null,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.51.0",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
})");
}

json Mixtral_8x7B() {
  return json::parse(R"({
  "architectures": ["MixtralForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 32768,
  "model_type": "mixtral",
  "num_attention_heads": 32,
  "num_experts_per_tok": 2,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "num_local_experts": 8,
  "output_router_logits": false,
  "rms_norm_eps": 1e-05,
  "rope_theta": 1e6,
  "router_aux_loss_coef": 0.02,
  "sliding_window": null,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.36.0.dev0",
  "use_cache": true,
  "vocab_size": 32000
})");
}

json Qwen2Moe_A2_7B() {
  return json::parse(R"({
  "architectures": ["Qwen2MoeForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151643,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 5632,
  "max_position_embeddings": 8192,
  "max_window_layers": 21,
  "model_type": "qwen2_moe",
  "num_attention_heads": 16,
  "num_hidden_layers": 24,
  "num_key_value_heads": 16,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 32768,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.39.0.dev0",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936,
  "decoder_sparse_step": 1,
  "moe_intermediate_size": 1408,
  "shared_expert_intermediate_size": 5632,
  "num_experts_per_tok": 4,
  "num_experts": 60,
  "norm_topk_prob": false,
  "output_router_logits": false,
  "router_aux_loss_coef": 0.001
})");
}

json Olmoe_1B_7B() {
  return json::parse(R"({
  "architectures": ["OlmoeForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "clip_qkv": null,
  "eos_token_id": 50279,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 1024,
  "max_position_embeddings": 4096,
  "model_type": "olmoe",
  "norm_topk_prob": false,
  "num_attention_heads": 16,
  "num_experts": 64,
  "num_experts_per_tok": 8,
  "num_hidden_layers": 16,
  "num_key_value_heads": 16,
  "output_router_logits": false,
  "pad_token_id": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": null,
  "rope_theta": 10000.0,
  "router_aux_loss_coef": 0.01,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0",
  "use_cache": true,
  "vocab_size": 50304
})");
}

// The smallest qwen3_moe config: only the required fields.
json MinimalQwen3() {
  return json{{"model_type", "qwen3_moe"}, {"hidden_size", 64},          {"num_hidden_layers", 2},
              {"num_attention_heads", 4},  {"vocab_size", 100},          {"num_experts", 4},
              {"num_experts_per_tok", 2},  {"moe_intermediate_size", 32}};
}

StatusOr<ModelConfig> Parse(const json& j, const std::string& source = "config.json") {
  return ModelConfig::FromJson(j.dump(), source);
}

ModelConfig ParseOk(const json& j) {
  StatusOr<ModelConfig> c = Parse(j);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : ModelConfig{};
}

// Expects a parse failure whose message names `field` (and the source file).
void ExpectError(const json& j, const std::string& field,
                 absl::StatusCode code = absl::StatusCode::kInvalidArgument) {
  StatusOr<ModelConfig> c = Parse(j, "dir/config.json");
  ASSERT_FALSE(c.ok()) << "accepted: " << j.dump();
  EXPECT_EQ(c.status().code(), code) << c.status();
  EXPECT_NE(StatusMessage(c.status()).find(field), std::string::npos)
      << "message does not name '" << field << "': " << c.status();
}

// ---------------------------------------------------------------------------------------------
// Real configs

TEST(ModelConfigTest, Qwen3_30B_A3B) {
  const ModelConfig c = ParseOk(Qwen3_30B_A3B());
  EXPECT_EQ(c.arch, ModelArch::kQwen3Moe);
  EXPECT_EQ(c.model_type, "qwen3_moe");
  EXPECT_EQ(c.architecture, "Qwen3MoeForCausalLM");
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.num_layers, 48);
  EXPECT_EQ(c.num_heads, 32);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 128);  // explicit, not hidden / heads (= 64)
  EXPECT_EQ(c.q_size(), 4096);
  EXPECT_EQ(c.kv_size(), 512);
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_EQ(c.max_position_embeddings, 40960);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.num_experts, 128);
  EXPECT_EQ(c.num_experts_per_tok, 8);
  EXPECT_EQ(c.moe_intermediate_size, 768);
  EXPECT_EQ(c.intermediate_size, 6144);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.decoder_sparse_step, 1);
  EXPECT_TRUE(c.mlp_only_layers.empty());
  EXPECT_EQ(c.shared_expert_intermediate_size, 0);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.qk_norm, QkNormKind::kPerHead);
  EXPECT_EQ(c.router, RouterKind::kSoftmaxTopK);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.torch_dtype, DType::kBF16);
  EXPECT_EQ(c.bos_token_id, 151643);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{151645});
  for (int l = 0; l < 48; ++l) EXPECT_TRUE(c.IsMoeLayer(l)) << l;
  EXPECT_TRUE(c.Validate().ok());
  // Published sizes: 30.5B total, 3.3B activated.
  EXPECT_GT(c.TotalParameters(), 30.4e9);
  EXPECT_LT(c.TotalParameters(), 30.6e9);
  EXPECT_GT(c.ActiveParameters(), 3.2e9);
  EXPECT_LT(c.ActiveParameters(), 3.4e9);
}

TEST(ModelConfigTest, Mixtral_8x7B) {
  const ModelConfig c = ParseOk(Mixtral_8x7B());
  EXPECT_EQ(c.arch, ModelArch::kMixtral);
  EXPECT_EQ(c.model_type, "mixtral");
  EXPECT_EQ(c.architecture, "MixtralForCausalLM");
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.num_layers, 32);
  EXPECT_EQ(c.num_heads, 32);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 128);  // derived: hidden / heads
  EXPECT_EQ(c.vocab_size, 32000);
  EXPECT_EQ(c.max_position_embeddings, 32768);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.num_experts, 8);  // from num_local_experts
  EXPECT_EQ(c.num_experts_per_tok, 2);
  EXPECT_EQ(c.moe_intermediate_size, 14336);  // from intermediate_size
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.decoder_sparse_step, 1);
  EXPECT_EQ(c.shared_expert_intermediate_size, 0);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.qk_norm, QkNormKind::kNone);
  EXPECT_EQ(c.router, RouterKind::kTopKSoftmax);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.torch_dtype, DType::kBF16);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{2});
  for (int l = 0; l < 32; ++l) EXPECT_TRUE(c.IsMoeLayer(l)) << l;
  // Published sizes: 46.7B total, 12.9B active.
  EXPECT_GT(c.TotalParameters(), 46.6e9);
  EXPECT_LT(c.TotalParameters(), 46.8e9);
  EXPECT_GT(c.ActiveParameters(), 12.8e9);
  EXPECT_LT(c.ActiveParameters(), 13.0e9);
}

TEST(ModelConfigTest, Qwen2Moe_A2_7B) {
  const ModelConfig c = ParseOk(Qwen2Moe_A2_7B());
  EXPECT_EQ(c.arch, ModelArch::kQwen2Moe);
  EXPECT_EQ(c.architecture, "Qwen2MoeForCausalLM");
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.num_layers, 24);
  EXPECT_EQ(c.num_heads, 16);
  EXPECT_EQ(c.num_kv_heads, 16);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_EQ(c.max_position_embeddings, 8192);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.num_experts, 60);
  EXPECT_EQ(c.num_experts_per_tok, 4);
  EXPECT_EQ(c.moe_intermediate_size, 1408);
  EXPECT_EQ(c.intermediate_size, 5632);
  EXPECT_EQ(c.shared_expert_intermediate_size, 5632);
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_TRUE(c.qkv_bias);  // Qwen2 attention always has q/k/v biases
  EXPECT_EQ(c.qk_norm, QkNormKind::kNone);
  EXPECT_EQ(c.router, RouterKind::kSoftmaxTopK);
  EXPECT_EQ(c.bos_token_id, 151643);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{151643});
  // Published sizes: 14.3B total, 2.7B activated.
  EXPECT_GT(c.TotalParameters(), 14.2e9);
  EXPECT_LT(c.TotalParameters(), 14.4e9);
  EXPECT_GT(c.ActiveParameters(), 2.6e9);
  EXPECT_LT(c.ActiveParameters(), 2.8e9);
}

TEST(ModelConfigTest, Olmoe_1B_7B) {
  const ModelConfig c = ParseOk(Olmoe_1B_7B());
  EXPECT_EQ(c.arch, ModelArch::kOlmoe);
  EXPECT_EQ(c.architecture, "OlmoeForCausalLM");
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.num_layers, 16);
  EXPECT_EQ(c.num_heads, 16);
  EXPECT_EQ(c.num_kv_heads, 16);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.vocab_size, 50304);
  EXPECT_EQ(c.max_position_embeddings, 4096);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.num_experts, 64);
  EXPECT_EQ(c.num_experts_per_tok, 8);
  EXPECT_EQ(c.moe_intermediate_size, 1024);  // OLMoE's expert size is intermediate_size
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.qk_norm, QkNormKind::kFull);
  EXPECT_EQ(c.router, RouterKind::kSoftmaxTopK);
  EXPECT_EQ(c.bos_token_id, -1);  // absent
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{50279});
  EXPECT_EQ(c.decoder_sparse_step, 1);
  for (int l = 0; l < 16; ++l) EXPECT_TRUE(c.IsMoeLayer(l)) << l;
  // Published sizes: 6.9B total, 1.3B active.
  EXPECT_GT(c.TotalParameters(), 6.85e9);
  EXPECT_LT(c.TotalParameters(), 6.95e9);
  EXPECT_GT(c.ActiveParameters(), 1.2e9);
  EXPECT_LT(c.ActiveParameters(), 1.35e9);
}

TEST(ModelConfigTest, ModelArchNames) {
  EXPECT_EQ(ModelArchName(ModelArch::kQwen3Moe), "qwen3_moe");
  EXPECT_EQ(ModelArchName(ModelArch::kMixtral), "mixtral");
  EXPECT_EQ(ModelArchName(ModelArch::kQwen2Moe), "qwen2_moe");
  EXPECT_EQ(ModelArchName(ModelArch::kOlmoe), "olmoe");
}

TEST(ModelConfigTest, StreamOutput) {
  std::ostringstream os;
  os << ParseOk(Qwen3_30B_A3B());
  EXPECT_EQ(os.str(),
            "qwen3_moe{hidden=2048 layers=48 heads=32/4x128 vocab=151936 experts=128 top8 F=768 "
            "norm_topk=1 tied=0}");
}

// ---------------------------------------------------------------------------------------------
// Defaults and derived fields

TEST(ModelConfigTest, Qwen3DefaultsWhenAbsent) {
  const ModelConfig c = ParseOk(MinimalQwen3());
  EXPECT_EQ(c.architecture, "");
  EXPECT_EQ(c.num_kv_heads, 4);  // = num_heads
  EXPECT_EQ(c.head_dim, 16);     // = hidden / heads
  EXPECT_EQ(c.max_position_embeddings, 32768);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_FALSE(c.norm_topk_prob);  // HF Qwen3MoeConfig default
  EXPECT_EQ(c.intermediate_size, 0);
  EXPECT_EQ(c.decoder_sparse_step, 1);
  EXPECT_TRUE(c.mlp_only_layers.empty());
  EXPECT_EQ(c.shared_expert_intermediate_size, 0);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.qk_norm, QkNormKind::kPerHead);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.torch_dtype, DType::kBF16);
  EXPECT_EQ(c.bos_token_id, -1);
  EXPECT_TRUE(c.eos_token_ids.empty());
}

TEST(ModelConfigTest, ArchDefaultsWhenAbsent) {
  json mixtral = Mixtral_8x7B();
  mixtral.erase("rope_theta");
  mixtral.erase("rms_norm_eps");
  mixtral.erase("num_key_value_heads");
  ModelConfig c = ParseOk(mixtral);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.num_kv_heads, 32);

  json olmoe = Olmoe_1B_7B();
  olmoe.erase("rope_theta");
  olmoe.erase("rms_norm_eps");
  olmoe.erase("norm_topk_prob");
  c = ParseOk(olmoe);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_FALSE(c.norm_topk_prob);

  json qwen2 = Qwen2Moe_A2_7B();
  qwen2.erase("rope_theta");
  qwen2.erase("rms_norm_eps");
  qwen2.erase("norm_topk_prob");
  qwen2.erase("shared_expert_intermediate_size");
  c = ParseOk(qwen2);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_EQ(c.shared_expert_intermediate_size, 0);
}

TEST(ModelConfigTest, NullFieldsMeanAbsent) {
  json j = MinimalQwen3();
  j["rope_theta"] = nullptr;
  j["num_key_value_heads"] = nullptr;
  j["bos_token_id"] = nullptr;
  j["eos_token_id"] = nullptr;
  j["mlp_only_layers"] = nullptr;
  j["architectures"] = nullptr;
  const ModelConfig c = ParseOk(j);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.bos_token_id, -1);
  EXPECT_TRUE(c.eos_token_ids.empty());
}

TEST(ModelConfigTest, MixtralAlwaysNormalisesTopK) {
  json j = Mixtral_8x7B();
  j["norm_topk_prob"] = false;
  EXPECT_TRUE(ParseOk(j).norm_topk_prob);
}

TEST(ModelConfigTest, NormTopkProbRead) {
  json j = MinimalQwen3();
  j["norm_topk_prob"] = true;
  EXPECT_TRUE(ParseOk(j).norm_topk_prob);
  j = Olmoe_1B_7B();
  j["norm_topk_prob"] = true;
  EXPECT_TRUE(ParseOk(j).norm_topk_prob);
}

TEST(ModelConfigTest, QkvBias) {
  json j = MinimalQwen3();
  j["attention_bias"] = true;
  EXPECT_TRUE(ParseOk(j).qkv_bias);
  j = Olmoe_1B_7B();
  j["attention_bias"] = true;
  EXPECT_TRUE(ParseOk(j).qkv_bias);
  // Qwen2-MoE has biases whatever attention_bias says (HF ignores it for Qwen2).
  j = Qwen2Moe_A2_7B();
  j["attention_bias"] = false;
  EXPECT_TRUE(ParseOk(j).qkv_bias);
}

TEST(ModelConfigTest, SharedExpertOnlyForQwen2Moe) {
  json j = MinimalQwen3();
  j["shared_expert_intermediate_size"] = 128;
  EXPECT_EQ(ParseOk(j).shared_expert_intermediate_size, 0);
}

TEST(ModelConfigTest, EosAsIntOrList) {
  json j = MinimalQwen3();
  j["eos_token_id"] = 7;
  EXPECT_EQ(ParseOk(j).eos_token_ids, std::vector<int>{7});
  j["eos_token_id"] = json::array({7, 9, 0});
  EXPECT_EQ(ParseOk(j).eos_token_ids, (std::vector<int>{7, 9, 0}));
  j["eos_token_id"] = json::array();
  EXPECT_TRUE(ParseOk(j).eos_token_ids.empty());
  j["bos_token_id"] = json::array({5, 6});
  EXPECT_EQ(ParseOk(j).bos_token_id, 5);
  j["bos_token_id"] = 0;
  EXPECT_EQ(ParseOk(j).bos_token_id, 0);
}

TEST(ModelConfigTest, TorchDtypeAndDtypeKeys) {
  json j = MinimalQwen3();
  j["torch_dtype"] = "float16";
  EXPECT_EQ(ParseOk(j).torch_dtype, DType::kF16);
  j["torch_dtype"] = "float32";
  EXPECT_EQ(ParseOk(j).torch_dtype, DType::kF32);
  j["torch_dtype"] = "bfloat16";
  EXPECT_EQ(ParseOk(j).torch_dtype, DType::kBF16);
  // Newer transformers write "dtype" instead of "torch_dtype".
  j.erase("torch_dtype");
  j["dtype"] = "float16";
  EXPECT_EQ(ParseOk(j).torch_dtype, DType::kF16);
  j["dtype"] = "float32";
  EXPECT_EQ(ParseOk(j).torch_dtype, DType::kF32);
  // torch_dtype wins when both are present.
  j["torch_dtype"] = "bfloat16";
  EXPECT_EQ(ParseOk(j).torch_dtype, DType::kBF16);
  j.erase("torch_dtype");
  j.erase("dtype");
  EXPECT_EQ(ParseOk(j).torch_dtype, DType::kBF16);
}

TEST(ModelConfigTest, IntegralFloatsAccepted) {
  json j = MinimalQwen3();
  j["hidden_size"] = 64.0;
  j["rope_theta"] = 500000;  // an integer where a number is expected
  const ModelConfig c = ParseOk(j);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.rope_theta, 500000.0);
}

TEST(ModelConfigTest, SlidingWindowThatNeverSlidesIsAccepted) {
  json j = Mixtral_8x7B();
  j["sliding_window"] = 32768;  // == max_position_embeddings: a full window
  EXPECT_TRUE(Parse(j).ok()) << Parse(j).status();
  j["sliding_window"] = 131072;
  EXPECT_TRUE(Parse(j).ok());
  // Qwen2-MoE ships sliding_window next to use_sliding_window=false: only the flag matters.
  j = Qwen2Moe_A2_7B();
  j["sliding_window"] = 4096;
  EXPECT_TRUE(Parse(j).ok()) << Parse(j).status();
}

// ---------------------------------------------------------------------------------------------
// Dense / sparse layers

TEST(ModelConfigTest, IsMoeLayerWithSparseStep) {
  json j = MinimalQwen3();
  j["num_hidden_layers"] = 6;
  j["decoder_sparse_step"] = 2;
  j["intermediate_size"] = 48;
  ModelConfig c = ParseOk(j);
  EXPECT_EQ(c.decoder_sparse_step, 2);
  const std::vector<bool> expect_step2 = {false, true, false, true, false, true};
  for (int l = 0; l < 6; ++l) EXPECT_EQ(c.IsMoeLayer(l), expect_step2[l]) << l;

  j["decoder_sparse_step"] = 3;
  c = ParseOk(j);
  const std::vector<bool> expect_step3 = {false, false, true, false, false, true};
  for (int l = 0; l < 6; ++l) EXPECT_EQ(c.IsMoeLayer(l), expect_step3[l]) << l;
}

TEST(ModelConfigTest, IsMoeLayerWithMlpOnlyLayers) {
  json j = MinimalQwen3();
  j["num_hidden_layers"] = 5;
  j["mlp_only_layers"] = json::array({0, 3});
  j["intermediate_size"] = 48;
  ModelConfig c = ParseOk(j);
  EXPECT_EQ(c.mlp_only_layers, (std::vector<int>{0, 3}));
  const std::vector<bool> expect = {false, true, true, false, true};
  for (int l = 0; l < 5; ++l) EXPECT_EQ(c.IsMoeLayer(l), expect[l]) << l;

  // Both: a layer is sparse only if the step selects it and it is not listed.
  j["decoder_sparse_step"] = 2;
  j["mlp_only_layers"] = json::array({3});
  c = ParseOk(j);
  const std::vector<bool> expect_both = {false, true, false, false, false};
  for (int l = 0; l < 5; ++l) EXPECT_EQ(c.IsMoeLayer(l), expect_both[l]) << l;
}

TEST(ModelConfigTest, DenseLayersNeedIntermediateSize) {
  json j = MinimalQwen3();
  j["mlp_only_layers"] = json::array({1});
  ExpectError(j, "intermediate_size");
  j["intermediate_size"] = 0;
  ExpectError(j, "intermediate_size");
  j.erase("mlp_only_layers");
  j["decoder_sparse_step"] = 2;
  ExpectError(j, "intermediate_size");
}

// ---------------------------------------------------------------------------------------------
// Parameter counts, computed by hand

// hidden 8, 2 layers, 2 heads x 4 (q 8), 1 kv head (kv 4), vocab 10, 4 experts, top-2, F = 6.
ModelConfig SmallConfig(ModelArch arch) {
  ModelConfig c;
  c.arch = arch;
  c.hidden_size = 8;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 4;
  c.vocab_size = 10;
  c.max_position_embeddings = 64;
  c.num_experts = 4;
  c.num_experts_per_tok = 2;
  c.moe_intermediate_size = 6;
  c.qk_norm = QkNormKind::kNone;
  c.qkv_bias = false;
  return c;
}

TEST(ModelConfigTest, ParameterCountsNoQkNorm) {
  ModelConfig c = SmallConfig(ModelArch::kMixtral);
  ASSERT_TRUE(c.Validate().ok()) << c.Validate();
  // Per layer: qkv 8*(8+4+4)=128, o 8*8=64, 2 norms 16, router 4*8=32, experts 4*3*8*6=576.
  // Model: embed 80 + lm_head 80 + final norm 8.
  EXPECT_EQ(c.TotalParameters(), 2 * (128 + 64 + 16 + 32 + 576) + 168);  // 1800
  // Active: 2 of 4 experts: 2*3*8*6 = 288.
  EXPECT_EQ(c.ActiveParameters(), 2 * (128 + 64 + 16 + 32 + 288) + 168);  // 1224
  c.tie_word_embeddings = true;
  EXPECT_EQ(c.TotalParameters(), 1800 - 80);
  EXPECT_EQ(c.ActiveParameters(), 1224 - 80);
}

TEST(ModelConfigTest, TotalParametersQkNormBiasSharedExpertDenseLayer) {
  ModelConfig c = SmallConfig(ModelArch::kQwen3Moe);
  c.qk_norm = QkNormKind::kPerHead;  // + 2 * head_dim = 8 per layer
  EXPECT_EQ(c.TotalParameters(), 2 * (128 + 64 + 16 + 8 + 32 + 576) + 168);

  c.qk_norm = QkNormKind::kFull;  // + q + kv = 12 per layer
  EXPECT_EQ(c.TotalParameters(), 2 * (128 + 64 + 16 + 12 + 32 + 576) + 168);

  c.qk_norm = QkNormKind::kNone;
  c.qkv_bias = true;                      // + q + 2 kv = 16 per layer
  c.shared_expert_intermediate_size = 5;  // + 3*8*5 + gate 8 = 128 per layer
  EXPECT_EQ(c.TotalParameters(), 2 * (128 + 16 + 64 + 16 + 32 + 576 + 128) + 168);

  // Layer 0 dense (decoder_sparse_step 2): 3*8*12 = 288 instead of router + experts.
  c.qkv_bias = false;
  c.shared_expert_intermediate_size = 0;
  c.decoder_sparse_step = 2;
  c.intermediate_size = 12;
  ASSERT_TRUE(c.Validate().ok()) << c.Validate();
  EXPECT_EQ(c.TotalParameters(), (128 + 64 + 16 + 288) + (128 + 64 + 16 + 32 + 576) + 168);
  EXPECT_EQ(c.ActiveParameters(), (128 + 64 + 16 + 288) + (128 + 64 + 16 + 32 + 288) + 168);
}

TEST(ModelConfigTest, ActiveParametersSharedExpert) {
  ModelConfig c = SmallConfig(ModelArch::kMixtral);
  c.num_experts_per_tok = 1;
  c.shared_expert_intermediate_size = 5;  // always active: 3*8*5 + 8
  EXPECT_EQ(c.ActiveParameters(), 2 * (128 + 64 + 16 + 32 + 144 + 128) + 168);
}

// Every token uses the q/k norm weights and the q/k/v biases: with all experts active, active and
// total counts agree.
TEST(ModelConfigTest, ActiveParametersCountQkNormAndBias) {
  ModelConfig c = SmallConfig(ModelArch::kQwen3Moe);
  c.qk_norm = QkNormKind::kPerHead;
  EXPECT_EQ(c.ActiveParameters(), 2 * (128 + 64 + 16 + 8 + 32 + 288) + 168);  // 1240
  c.num_experts_per_tok = c.num_experts;
  EXPECT_EQ(c.ActiveParameters(), c.TotalParameters());
  c.qk_norm = QkNormKind::kNone;
  c.qkv_bias = true;
  EXPECT_EQ(c.ActiveParameters(), c.TotalParameters());
}

// ---------------------------------------------------------------------------------------------
// Errors: every bad field is named.

TEST(ModelConfigErrorsTest, MissingRequiredFields) {
  for (const char* field :
       {"hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "num_experts",
        "num_experts_per_tok", "moe_intermediate_size", "model_type"}) {
    SCOPED_TRACE(field);
    json j = MinimalQwen3();
    j.erase(field);
    ExpectError(j, std::string("'") + field + "'");
    StatusOr<ModelConfig> c = Parse(j, "some/dir/config.json");
    EXPECT_NE(StatusMessage(c.status()).find("some/dir/config.json"), std::string::npos)
        << c.status();
    EXPECT_NE(StatusMessage(c.status()).find("missing"), std::string::npos) << c.status();
  }
  json j = Mixtral_8x7B();
  j.erase("num_local_experts");
  ExpectError(j, "num_local_experts");
  j = Mixtral_8x7B();
  j.erase("intermediate_size");
  ExpectError(j, "intermediate_size");
  j = Olmoe_1B_7B();
  j.erase("intermediate_size");
  ExpectError(j, "intermediate_size");
}

TEST(ModelConfigErrorsTest, WrongTypes) {
  struct Case {
    const char* field;
    json value;
  };
  const Case cases[] = {
      {"hidden_size", "2048"},
      {"hidden_size", 2048.5},
      {"hidden_size", true},
      {"hidden_size", json::array({2048})},
      {"hidden_size", int64_t{1} << 33},
      {"num_hidden_layers", "4"},
      {"num_attention_heads", json::object()},
      {"num_key_value_heads", 1.5},
      {"head_dim", "16"},
      {"vocab_size", false},
      {"max_position_embeddings", "long"},
      {"rope_theta", "1e6"},
      {"rms_norm_eps", json::array()},
      {"num_experts", "4"},
      {"num_experts_per_tok", 2.5},
      {"moe_intermediate_size", "32"},
      {"intermediate_size", "48"},
      {"norm_topk_prob", "true"},
      {"norm_topk_prob", 1},
      {"decoder_sparse_step", "1"},
      {"mlp_only_layers", "none"},
      {"mlp_only_layers", json::array({1, "2"})},
      {"attention_bias", 0},
      {"tie_word_embeddings", "false"},
      {"torch_dtype", 16},
      {"bos_token_id", "1"},
      {"eos_token_id", "2"},
      {"eos_token_id", json::array({2, 2.5})},
      {"hidden_act", 1},
      {"use_sliding_window", "no"},
      {"architectures", "Qwen3MoeForCausalLM"},
      {"architectures", json::array()},
      {"architectures", json::array({1})},
      {"model_type", 3},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.field) + " = " + c.value.dump());
    json j = MinimalQwen3();
    j[c.field] = c.value;
    ExpectError(j, std::string("'") + c.field + "'");
  }
}

TEST(ModelConfigErrorsTest, WrongTypeMessageShowsValue) {
  json j = MinimalQwen3();
  j["hidden_size"] = "wide";
  StatusOr<ModelConfig> c = Parse(j, "x/config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(StatusMessage(c.status()),
            "x/config.json: field 'hidden_size' must be an integer, got \"wide\"");
}

TEST(ModelConfigErrorsTest, NonPositiveValues) {
  struct Case {
    const char* field;
    int value;
  };
  const Case cases[] = {
      {"hidden_size", -1},
      {"hidden_size", 0},
      {"num_hidden_layers", 0},
      {"num_hidden_layers", -3},
      {"num_attention_heads", 0},
      {"num_attention_heads", -4},
      {"num_key_value_heads", 0},
      {"num_key_value_heads", -2},
      {"head_dim", 0},
      {"head_dim", -16},
      {"vocab_size", 0},
      {"vocab_size", -100},
      {"max_position_embeddings", 0},
      {"num_experts", 0},
      {"num_experts", -4},
      {"num_experts_per_tok", 0},
      {"num_experts_per_tok", -1},
      {"moe_intermediate_size", 0},
      {"moe_intermediate_size", -32},
      {"decoder_sparse_step", 0},
      {"decoder_sparse_step", -1},
      {"rope_theta", 0},
      {"rope_theta", -1},
      {"rms_norm_eps", 0},
      {"rms_norm_eps", -1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.field) + " = " + std::to_string(c.value));
    json j = MinimalQwen3();
    j[c.field] = c.value;
    ExpectError(j, std::string("'") + c.field + "'");
  }
  json j = Qwen2Moe_A2_7B();
  j["shared_expert_intermediate_size"] = -1;
  ExpectError(j, "shared_expert_intermediate_size");
}

TEST(ModelConfigErrorsTest, HeadsNotDivisibleByKvHeads) {
  json j = Qwen3_30B_A3B();
  j["num_key_value_heads"] = 5;
  ExpectError(j, "num_key_value_heads");
  ExpectError(j, "num_attention_heads");
  j["num_key_value_heads"] = 64;  // more kv heads than heads
  ExpectError(j, "num_key_value_heads");
}

TEST(ModelConfigErrorsTest, TopKExceedsExperts) {
  json j = Qwen3_30B_A3B();
  j["num_experts_per_tok"] = 129;
  ExpectError(j, "num_experts_per_tok");
  j["num_experts_per_tok"] = 128;  // all experts: allowed
  EXPECT_TRUE(Parse(j).ok());
  j = Mixtral_8x7B();
  j["num_experts_per_tok"] = 9;
  ExpectError(j, "num_experts_per_tok");
}

TEST(ModelConfigErrorsTest, UnsupportedModelTypeListsSupported) {
  json j = Qwen3_30B_A3B();
  j["model_type"] = "llama";
  StatusOr<ModelConfig> c = Parse(j);
  ASSERT_FALSE(c.ok());
  const std::string msg = StatusMessage(c.status());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnimplemented);
  for (const char* s : {"model_type", "llama", "qwen3_moe", "mixtral", "qwen2_moe", "olmoe"}) {
    EXPECT_NE(msg.find(s), std::string::npos) << s << " not in: " << msg;
  }
  j["model_type"] = "";
  ExpectError(j, "model_type");
  j["model_type"] = "Qwen3_MoE";  // case matters
  ExpectError(j, "model_type", absl::StatusCode::kUnimplemented);
}

TEST(ModelConfigErrorsTest, UnsupportedFeatures) {
  json j = Qwen3_30B_A3B();
  j["rope_scaling"] = json{{"rope_type", "yarn"}, {"factor", 4.0}};
  ExpectError(j, "unsupported: rope_scaling", absl::StatusCode::kUnimplemented);

  j = Olmoe_1B_7B();
  j["rope_scaling"] = json{{"type", "linear"}, {"factor", 2.0}};
  ExpectError(j, "unsupported: rope_scaling", absl::StatusCode::kUnimplemented);

  j = Qwen3_30B_A3B();
  j["hidden_act"] = "gelu";
  ExpectError(j, "hidden_act", absl::StatusCode::kUnimplemented);
  ExpectError(j, "gelu", absl::StatusCode::kUnimplemented);

  j = Qwen3_30B_A3B();
  j["use_sliding_window"] = true;
  ExpectError(j, "use_sliding_window", absl::StatusCode::kUnimplemented);

  j = Mixtral_8x7B();
  j["sliding_window"] = 4096;  // the Mistral-7B window: attention would differ
  ExpectError(j, "sliding_window", absl::StatusCode::kUnimplemented);
  j["sliding_window"] = "big";
  ExpectError(j, "sliding_window");

  j = Olmoe_1B_7B();
  j["clip_qkv"] = 8.0;
  ExpectError(j, "clip_qkv", absl::StatusCode::kUnimplemented);

  j = Qwen3_30B_A3B();
  j["torch_dtype"] = "float8_e4m3fn";
  ExpectError(j, "torch_dtype", absl::StatusCode::kUnimplemented);
}

TEST(ModelConfigErrorsTest, OddHeadDim) {
  json j = Qwen3_30B_A3B();
  j["head_dim"] = 127;
  ExpectError(j, "head_dim");
  // Derived head_dim (hidden / heads) that is odd.
  j = MinimalQwen3();
  j["hidden_size"] = 60;
  j["num_attention_heads"] = 4;
  j["num_key_value_heads"] = 4;
  ExpectError(j, "head_dim");
}

TEST(ModelConfigErrorsTest, TokenIdsOutsideVocabulary) {
  json j = Qwen3_30B_A3B();
  j["eos_token_id"] = 151936;  // == vocab_size
  ExpectError(j, "eos_token_id");
  j["eos_token_id"] = json::array({151645, 200000});
  ExpectError(j, "eos_token_id");
  j["eos_token_id"] = -1;
  ExpectError(j, "eos_token_id");
  j["eos_token_id"] = 151935;  // last id: fine
  EXPECT_TRUE(Parse(j).ok());
  j["bos_token_id"] = 151936;
  ExpectError(j, "bos_token_id");
}

// Ids beyond int32 must be rejected, not wrapped around (4294967298 would become 2).
TEST(ModelConfigErrorsTest, TokenIdsBeyondInt32Rejected) {
  json j = Qwen3_30B_A3B();
  j["eos_token_id"] = int64_t{4294967298};
  ExpectError(j, "eos_token_id");
  j["eos_token_id"] = json::array({int64_t{4294967298}});
  ExpectError(j, "eos_token_id");
  j["eos_token_id"] = 151645;
  j["mlp_only_layers"] = json::array({int64_t{4294967297}});
  ExpectError(j, "mlp_only_layers");
}

TEST(ModelConfigErrorsTest, MlpOnlyLayersOutOfRange) {
  json j = Qwen3_30B_A3B();
  j["mlp_only_layers"] = json::array({48});
  ExpectError(j, "mlp_only_layers");
  j["mlp_only_layers"] = json::array({-1});
  ExpectError(j, "mlp_only_layers");
  j["mlp_only_layers"] = json::array({0, 47});  // in range (dense layers use intermediate_size)
  EXPECT_TRUE(Parse(j).ok()) << Parse(j).status();
}

TEST(ModelConfigErrorsTest, NotJson) {
  for (const char* text : {"", "{", "not json", "{\"model_type\": \"qwen3_moe\",}", "\x01"}) {
    SCOPED_TRACE(text);
    StatusOr<ModelConfig> c = ModelConfig::FromJson(text, "m/config.json");
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(StatusMessage(c.status()).find("m/config.json"), std::string::npos);
    EXPECT_NE(StatusMessage(c.status()).find("not valid JSON"), std::string::npos) << c.status();
  }
}

TEST(ModelConfigErrorsTest, TopLevelNotObject) {
  for (const char* text :
       {"[]", "[{\"model_type\": \"qwen3_moe\"}]", "42", "\"qwen3_moe\"", "null", "true"}) {
    SCOPED_TRACE(text);
    StatusOr<ModelConfig> c = ModelConfig::FromJson(text, "m/config.json");
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(StatusMessage(c.status()).find("top level must be a JSON object"), std::string::npos)
        << c.status();
  }
}

TEST(ModelConfigErrorsTest, ValidateDirectly) {
  ModelConfig c = SmallConfig(ModelArch::kQwen3Moe);
  EXPECT_TRUE(c.Validate().ok());
  c.num_kv_heads = 3;
  EXPECT_NE(StatusMessage(c.Validate()).find("num_key_value_heads"), std::string::npos);
  c = SmallConfig(ModelArch::kQwen3Moe);
  c.eos_token_ids = {10};
  EXPECT_NE(StatusMessage(c.Validate()).find("eos_token_id"), std::string::npos);
  c = SmallConfig(ModelArch::kQwen3Moe);
  c.mlp_only_layers = {2};
  EXPECT_NE(StatusMessage(c.Validate()).find("mlp_only_layers"), std::string::npos);
  c = SmallConfig(ModelArch::kQwen3Moe);
  c.rope_theta = std::nan("");
  EXPECT_NE(StatusMessage(c.Validate()).find("rope_theta"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// FromDirectory

TEST(ModelConfigTest, FromDirectoryMissing) {
  const std::string dir = moe::testing::MakeScratchDir("config_missing") + "/does_not_exist";
  StatusOr<ModelConfig> c = ModelConfig::FromDirectory(dir);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(StatusMessage(c.status()).find(dir + "/config.json"), std::string::npos) << c.status();
  // An existing directory without config.json.
  const std::string empty = moe::testing::MakeScratchDir("config_empty");
  c = ModelConfig::FromDirectory(empty);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
}

TEST(ModelConfigTest, FromDirectoryReadsConfigAndNamesFileInErrors) {
  const std::string dir = moe::testing::MakeScratchDir("config_dir");
  {
    std::ofstream out(dir + "/config.json");
    out << Olmoe_1B_7B().dump(2);
  }
  StatusOr<ModelConfig> c = ModelConfig::FromDirectory(dir);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->arch, ModelArch::kOlmoe);
  EXPECT_EQ(c->vocab_size, 50304);

  json bad = Olmoe_1B_7B();
  bad.erase("vocab_size");
  {
    std::ofstream out(dir + "/config.json", std::ios::trunc);
    out << bad.dump();
  }
  c = ModelConfig::FromDirectory(dir);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(StatusMessage(c.status()).find(dir + "/config.json"), std::string::npos) << c.status();
  EXPECT_NE(StatusMessage(c.status()).find("vocab_size"), std::string::npos);
}

}  // namespace
}  // namespace moe::model
