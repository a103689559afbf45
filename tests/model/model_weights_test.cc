#include "model/model_weights.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "model/random_model.h"
#include "model/safetensors.h"
#include "model/weight_names.h"
#include "tests/testing/test_models.h"

namespace moe::model {
namespace {

using Shape = std::vector<int64_t>;

// ---------------------------------------------------------------------------------------------
// Small configs: hidden 8, heads 2 x 4 (q 8), 1 kv head (kv 4), vocab 10, F 6.

ModelConfig Small(ModelArch arch, int layers = 1, int experts = 2) {
  ModelConfig c;
  c.arch = arch;
  c.model_type = std::string(ModelArchName(arch));
  c.hidden_size = 8;
  c.num_layers = layers;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 4;
  c.vocab_size = 10;
  c.max_position_embeddings = 64;
  c.num_experts = experts;
  c.num_experts_per_tok = 1;
  c.moe_intermediate_size = 6;
  c.intermediate_size = 12;
  switch (arch) {
    case ModelArch::kQwen3Moe:
      c.qk_norm = QkNormKind::kPerHead;
      break;
    case ModelArch::kMixtral:
      c.qk_norm = QkNormKind::kNone;
      c.router = RouterKind::kTopKSoftmax;
      break;
    case ModelArch::kQwen2Moe:
      c.qk_norm = QkNormKind::kNone;
      c.qkv_bias = true;
      c.shared_expert_intermediate_size = 5;
      break;
    case ModelArch::kOlmoe:
      c.qk_norm = QkNormKind::kFull;
      break;
  }
  return c;
}

struct Expected {
  std::string name;
  WeightRole role;
  int layer;
  int expert;
  Shape shape;
};

void ExpectWeightsEq(const std::vector<WeightSpec>& got, const std::vector<Expected>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(want[i].name);
    EXPECT_EQ(got[i].name, want[i].name);
    EXPECT_EQ(got[i].role, want[i].role);
    EXPECT_EQ(got[i].layer, want[i].layer);
    EXPECT_EQ(got[i].expert, want[i].expert);
    EXPECT_EQ(got[i].shape, want[i].shape);
  }
}

// ---------------------------------------------------------------------------------------------
// ExpectedWeights

TEST(ExpectedWeightsTest, Qwen3Moe) {
  using R = WeightRole;
  const std::string p = "model.layers.0.";
  ExpectWeightsEq(ExpectedWeights(Small(ModelArch::kQwen3Moe)),
                  {
                      {"model.embed_tokens.weight", R::kEmbed, -1, -1, {10, 8}},
                      {p + "input_layernorm.weight", R::kInputNorm, 0, -1, {8}},
                      {p + "self_attn.q_proj.weight", R::kQ, 0, -1, {8, 8}},
                      {p + "self_attn.k_proj.weight", R::kK, 0, -1, {4, 8}},
                      {p + "self_attn.v_proj.weight", R::kV, 0, -1, {4, 8}},
                      {p + "self_attn.o_proj.weight", R::kO, 0, -1, {8, 8}},
                      {p + "self_attn.q_norm.weight", R::kQNorm, 0, -1, {4}},
                      {p + "self_attn.k_norm.weight", R::kKNorm, 0, -1, {4}},
                      {p + "post_attention_layernorm.weight", R::kPostAttnNorm, 0, -1, {8}},
                      {p + "mlp.gate.weight", R::kRouter, 0, -1, {2, 8}},
                      {p + "mlp.experts.0.gate_proj.weight", R::kExpertGate, 0, 0, {6, 8}},
                      {p + "mlp.experts.0.up_proj.weight", R::kExpertUp, 0, 0, {6, 8}},
                      {p + "mlp.experts.0.down_proj.weight", R::kExpertDown, 0, 0, {8, 6}},
                      {p + "mlp.experts.1.gate_proj.weight", R::kExpertGate, 0, 1, {6, 8}},
                      {p + "mlp.experts.1.up_proj.weight", R::kExpertUp, 0, 1, {6, 8}},
                      {p + "mlp.experts.1.down_proj.weight", R::kExpertDown, 0, 1, {8, 6}},
                      {"model.norm.weight", R::kFinalNorm, -1, -1, {8}},
                      {"lm_head.weight", R::kLmHead, -1, -1, {10, 8}},
                  });
}

TEST(ExpectedWeightsTest, Mixtral) {
  using R = WeightRole;
  const std::string p = "model.layers.0.";
  const std::string e = p + "block_sparse_moe.experts.";
  ExpectWeightsEq(ExpectedWeights(Small(ModelArch::kMixtral)),
                  {
                      {"model.embed_tokens.weight", R::kEmbed, -1, -1, {10, 8}},
                      {p + "input_layernorm.weight", R::kInputNorm, 0, -1, {8}},
                      {p + "self_attn.q_proj.weight", R::kQ, 0, -1, {8, 8}},
                      {p + "self_attn.k_proj.weight", R::kK, 0, -1, {4, 8}},
                      {p + "self_attn.v_proj.weight", R::kV, 0, -1, {4, 8}},
                      {p + "self_attn.o_proj.weight", R::kO, 0, -1, {8, 8}},
                      {p + "post_attention_layernorm.weight", R::kPostAttnNorm, 0, -1, {8}},
                      {p + "block_sparse_moe.gate.weight", R::kRouter, 0, -1, {2, 8}},
                      {e + "0.w1.weight", R::kExpertGate, 0, 0, {6, 8}},
                      {e + "0.w3.weight", R::kExpertUp, 0, 0, {6, 8}},
                      {e + "0.w2.weight", R::kExpertDown, 0, 0, {8, 6}},
                      {e + "1.w1.weight", R::kExpertGate, 0, 1, {6, 8}},
                      {e + "1.w3.weight", R::kExpertUp, 0, 1, {6, 8}},
                      {e + "1.w2.weight", R::kExpertDown, 0, 1, {8, 6}},
                      {"model.norm.weight", R::kFinalNorm, -1, -1, {8}},
                      {"lm_head.weight", R::kLmHead, -1, -1, {10, 8}},
                  });
}

TEST(ExpectedWeightsTest, Qwen2MoeBiasesAndSharedExpert) {
  using R = WeightRole;
  const std::string p = "model.layers.0.";
  ExpectWeightsEq(ExpectedWeights(Small(ModelArch::kQwen2Moe)),
                  {
                      {"model.embed_tokens.weight", R::kEmbed, -1, -1, {10, 8}},
                      {p + "input_layernorm.weight", R::kInputNorm, 0, -1, {8}},
                      {p + "self_attn.q_proj.weight", R::kQ, 0, -1, {8, 8}},
                      {p + "self_attn.k_proj.weight", R::kK, 0, -1, {4, 8}},
                      {p + "self_attn.v_proj.weight", R::kV, 0, -1, {4, 8}},
                      {p + "self_attn.q_proj.bias", R::kQBias, 0, -1, {8}},
                      {p + "self_attn.k_proj.bias", R::kKBias, 0, -1, {4}},
                      {p + "self_attn.v_proj.bias", R::kVBias, 0, -1, {4}},
                      {p + "self_attn.o_proj.weight", R::kO, 0, -1, {8, 8}},
                      {p + "post_attention_layernorm.weight", R::kPostAttnNorm, 0, -1, {8}},
                      {p + "mlp.gate.weight", R::kRouter, 0, -1, {2, 8}},
                      {p + "mlp.experts.0.gate_proj.weight", R::kExpertGate, 0, 0, {6, 8}},
                      {p + "mlp.experts.0.up_proj.weight", R::kExpertUp, 0, 0, {6, 8}},
                      {p + "mlp.experts.0.down_proj.weight", R::kExpertDown, 0, 0, {8, 6}},
                      {p + "mlp.experts.1.gate_proj.weight", R::kExpertGate, 0, 1, {6, 8}},
                      {p + "mlp.experts.1.up_proj.weight", R::kExpertUp, 0, 1, {6, 8}},
                      {p + "mlp.experts.1.down_proj.weight", R::kExpertDown, 0, 1, {8, 6}},
                      {p + "mlp.shared_expert.gate_proj.weight", R::kSharedGate, 0, -1, {5, 8}},
                      {p + "mlp.shared_expert.up_proj.weight", R::kSharedUp, 0, -1, {5, 8}},
                      {p + "mlp.shared_expert.down_proj.weight", R::kSharedDown, 0, -1, {8, 5}},
                      {p + "mlp.shared_expert_gate.weight", R::kSharedExpertGate, 0, -1, {1, 8}},
                      {"model.norm.weight", R::kFinalNorm, -1, -1, {8}},
                      {"lm_head.weight", R::kLmHead, -1, -1, {10, 8}},
                  });
}

TEST(ExpectedWeightsTest, OlmoeFullWidthQkNorm) {
  using R = WeightRole;
  const std::string p = "model.layers.0.";
  ModelConfig c = Small(ModelArch::kOlmoe);
  c.tie_word_embeddings = true;
  ExpectWeightsEq(ExpectedWeights(c),
                  {
                      {"model.embed_tokens.weight", R::kEmbed, -1, -1, {10, 8}},
                      {p + "input_layernorm.weight", R::kInputNorm, 0, -1, {8}},
                      {p + "self_attn.q_proj.weight", R::kQ, 0, -1, {8, 8}},
                      {p + "self_attn.k_proj.weight", R::kK, 0, -1, {4, 8}},
                      {p + "self_attn.v_proj.weight", R::kV, 0, -1, {4, 8}},
                      {p + "self_attn.o_proj.weight", R::kO, 0, -1, {8, 8}},
                      {p + "self_attn.q_norm.weight", R::kQNorm, 0, -1, {8}},  // heads * head_dim
                      {p + "self_attn.k_norm.weight", R::kKNorm, 0, -1, {4}},  // kv heads * hd
                      {p + "post_attention_layernorm.weight", R::kPostAttnNorm, 0, -1, {8}},
                      {p + "mlp.gate.weight", R::kRouter, 0, -1, {2, 8}},
                      {p + "mlp.experts.0.gate_proj.weight", R::kExpertGate, 0, 0, {6, 8}},
                      {p + "mlp.experts.0.up_proj.weight", R::kExpertUp, 0, 0, {6, 8}},
                      {p + "mlp.experts.0.down_proj.weight", R::kExpertDown, 0, 0, {8, 6}},
                      {p + "mlp.experts.1.gate_proj.weight", R::kExpertGate, 0, 1, {6, 8}},
                      {p + "mlp.experts.1.up_proj.weight", R::kExpertUp, 0, 1, {6, 8}},
                      {p + "mlp.experts.1.down_proj.weight", R::kExpertDown, 0, 1, {8, 6}},
                      {"model.norm.weight", R::kFinalNorm, -1, -1, {8}},
                      // tied: no lm_head
                  });
}

TEST(ExpectedWeightsTest, TiedVersusUntiedLmHead) {
  for (ModelArch arch :
       {ModelArch::kQwen3Moe, ModelArch::kMixtral, ModelArch::kQwen2Moe, ModelArch::kOlmoe}) {
    ModelConfig c = Small(arch);
    c.tie_word_embeddings = false;
    const std::vector<WeightSpec> untied = ExpectedWeights(c);
    c.tie_word_embeddings = true;
    const std::vector<WeightSpec> tied = ExpectedWeights(c);
    ASSERT_EQ(untied.size(), tied.size() + 1);
    EXPECT_EQ(untied.back().name, "lm_head.weight");
    EXPECT_EQ(untied.back().role, WeightRole::kLmHead);
    for (const WeightSpec& s : tied) EXPECT_NE(s.role, WeightRole::kLmHead);
    for (size_t i = 0; i < tied.size(); ++i) EXPECT_EQ(tied[i].name, untied[i].name);
  }
}

TEST(ExpectedWeightsTest, DenseLayersUseMlpNames) {
  using R = WeightRole;
  ModelConfig c = Small(ModelArch::kQwen3Moe, /*layers=*/2, /*experts=*/1);
  c.decoder_sparse_step = 2;  // layer 0 dense, layer 1 sparse
  ASSERT_TRUE(c.Validate().ok()) << c.Validate();
  const std::vector<WeightSpec> specs = ExpectedWeights(c);
  std::vector<Expected> layer0_mlp = {
      {"model.layers.0.mlp.gate_proj.weight", R::kMlpGate, 0, -1, {12, 8}},
      {"model.layers.0.mlp.up_proj.weight", R::kMlpUp, 0, -1, {12, 8}},
      {"model.layers.0.mlp.down_proj.weight", R::kMlpDown, 0, -1, {8, 12}},
  };
  // embed + layer 0 (input norm, q, k, v, o, q_norm, k_norm, post norm) then the dense MLP.
  ASSERT_GE(specs.size(), 12u);
  ExpectWeightsEq({specs.begin() + 9, specs.begin() + 12}, layer0_mlp);
  int routers = 0, mlp = 0;
  for (const WeightSpec& s : specs) {
    if (s.role == R::kRouter) {
      ++routers;
      EXPECT_EQ(s.layer, 1);
    }
    if (s.role == R::kMlpGate || s.role == R::kMlpUp || s.role == R::kMlpDown) {
      ++mlp;
      EXPECT_EQ(s.layer, 0);
    }
  }
  EXPECT_EQ(routers, 1);
  EXPECT_EQ(mlp, 3);
}

TEST(ExpectedWeightsTest, RealSizedCountsAndUniqueNames) {
  // Qwen3-30B-A3B: embed, 48 x (2 norms, q, k, v, o, q/k norm, router, 128 x 3 experts), norm,
  // lm_head.
  ModelConfig c = Small(ModelArch::kQwen3Moe, 48, 128);
  c.hidden_size = 2048;
  c.num_heads = 32;
  c.num_kv_heads = 4;
  c.head_dim = 128;
  c.vocab_size = 151936;
  c.num_experts_per_tok = 8;
  c.moe_intermediate_size = 768;
  const std::vector<WeightSpec> specs = ExpectedWeights(c);
  EXPECT_EQ(specs.size(), 1u + 48u * (9u + 128u * 3u) + 2u);
  std::set<std::string> names;
  int64_t params = 0;
  for (const WeightSpec& s : specs) {
    EXPECT_TRUE(names.insert(s.name).second) << "duplicate " << s.name;
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    params += n;
  }
  // The names list and the parameter count agree.
  EXPECT_EQ(params, c.TotalParameters());
  const WeightSpec* q = nullptr;
  for (const WeightSpec& s : specs) {
    if (s.name == "model.layers.47.self_attn.q_proj.weight") q = &s;
  }
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->shape, (Shape{4096, 2048}));
  EXPECT_EQ(specs[specs.size() - 3].name, "model.layers.47.mlp.experts.127.down_proj.weight");
  EXPECT_EQ(specs[specs.size() - 3].shape, (Shape{2048, 768}));
}

TEST(ExpectedWeightsTest, ParameterCountMatchesForEveryArch) {
  for (ModelArch arch :
       {ModelArch::kQwen3Moe, ModelArch::kMixtral, ModelArch::kQwen2Moe, ModelArch::kOlmoe}) {
    for (bool tied : {false, true}) {
      ModelConfig c = Small(arch, 3, 4);
      c.tie_word_embeddings = tied;
      c.mlp_only_layers = {1};
      int64_t params = 0;
      for (const WeightSpec& s : ExpectedWeights(c)) {
        int64_t n = 1;
        for (int64_t d : s.shape) n *= d;
        params += n;
      }
      EXPECT_EQ(params, c.TotalParameters()) << ModelArchName(arch) << " tied=" << tied;
    }
  }
}

TEST(WeightNamesTest, RolePredicates) {
  using R = WeightRole;
  for (R r : {R::kFinalNorm, R::kInputNorm, R::kPostAttnNorm, R::kQNorm, R::kKNorm}) {
    EXPECT_TRUE(IsNormRole(r));
    EXPECT_FALSE(IsBiasRole(r));
  }
  for (R r : {R::kQBias, R::kKBias, R::kVBias}) {
    EXPECT_TRUE(IsBiasRole(r));
    EXPECT_FALSE(IsNormRole(r));
  }
  for (R r : {R::kEmbed, R::kLmHead, R::kQ, R::kK, R::kV, R::kO, R::kRouter, R::kExpertGate,
              R::kExpertUp, R::kExpertDown, R::kSharedGate, R::kSharedUp, R::kSharedDown,
              R::kSharedExpertGate, R::kMlpGate, R::kMlpUp, R::kMlpDown}) {
    EXPECT_FALSE(IsNormRole(r));
    EXPECT_FALSE(IsBiasRole(r));
  }
}

TEST(WeightNamesTest, IgnorableTensors) {
  ModelConfig c = Small(ModelArch::kQwen3Moe);
  EXPECT_TRUE(IsIgnorableTensor(c, "model.layers.0.self_attn.rotary_emb.inv_freq"));
  EXPECT_TRUE(IsIgnorableTensor(c, "model.layers.17.self_attn.rotary_emb.inv_freq"));
  EXPECT_FALSE(IsIgnorableTensor(c, "lm_head.weight"));  // untied: required, not ignorable
  EXPECT_FALSE(IsIgnorableTensor(c, "model.layers.0.self_attn.q_proj.weight"));
  EXPECT_FALSE(IsIgnorableTensor(c, "model.layers.0.self_attn.rotary_emb.inv_freq.x"));
  c.tie_word_embeddings = true;
  EXPECT_TRUE(IsIgnorableTensor(c, "lm_head.weight"));
  EXPECT_FALSE(IsIgnorableTensor(c, "lm_head.bias"));
}

// ---------------------------------------------------------------------------------------------
// BindWeights on checkpoints written to disk

size_t ByteCount(const Shape& shape, DType dtype) {
  size_t n = DTypeSize(dtype);
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

TensorToWrite ZeroTensor(const std::string& name, DType dtype, Shape shape) {
  const size_t bytes = ByteCount(shape, dtype);
  return TensorToWrite{name, dtype, std::move(shape),
                       [bytes](void* out) { std::memset(out, 0, bytes); }};
}

struct CheckpointEdits {
  std::set<std::string> drop;            // expected tensors left out
  std::map<std::string, Shape> reshape;  // expected tensors written with another shape
  std::map<std::string, DType> dtype;    // per-tensor dtype (default BF16)
  std::vector<TensorToWrite> extra;      // tensors added
};

// Writes the checkpoint a config expects (with edits) into a fresh directory and opens it.
std::unique_ptr<Checkpoint> WriteCheckpoint(const ModelConfig& c, const CheckpointEdits& edits,
                                            const std::string& dir_name) {
  std::vector<TensorToWrite> tensors;
  for (const WeightSpec& s : ExpectedWeights(c)) {
    if (edits.drop.count(s.name)) continue;
    auto shape_it = edits.reshape.find(s.name);
    auto dtype_it = edits.dtype.find(s.name);
    tensors.push_back(ZeroTensor(s.name,
                                 dtype_it == edits.dtype.end() ? DType::kBF16 : dtype_it->second,
                                 shape_it == edits.reshape.end() ? s.shape : shape_it->second));
  }
  for (const TensorToWrite& t : edits.extra) tensors.push_back(t);
  const std::string dir = moe::testing::MakeScratchDir(dir_name);
  const Status written = WriteSafetensors(dir + "/model.safetensors", tensors);
  EXPECT_TRUE(written.ok()) << written;
  StatusOr<std::unique_ptr<Checkpoint>> ckpt = Checkpoint::Open(dir);
  EXPECT_TRUE(ckpt.ok()) << ckpt.status();
  return ckpt.ok() ? std::move(*ckpt) : nullptr;
}

// The bound entry for a spec, found through the public ModelWeights fields.
const TensorEntry* BoundSlot(const ModelWeights& w, const WeightSpec& s) {
  using R = WeightRole;
  if (s.layer < 0) {
    switch (s.role) {
      case R::kEmbed:
        return w.embed;
      case R::kFinalNorm:
        return w.final_norm;
      case R::kLmHead:
        return w.lm_head;
      default:
        return nullptr;
    }
  }
  const LayerWeights& l = w.layers.at(s.layer);
  switch (s.role) {
    case R::kInputNorm:
      return l.input_norm;
    case R::kPostAttnNorm:
      return l.post_attn_norm;
    case R::kQ:
      return l.q;
    case R::kK:
      return l.k;
    case R::kV:
      return l.v;
    case R::kO:
      return l.o;
    case R::kQBias:
      return l.q_bias;
    case R::kKBias:
      return l.k_bias;
    case R::kVBias:
      return l.v_bias;
    case R::kQNorm:
      return l.q_norm;
    case R::kKNorm:
      return l.k_norm;
    case R::kRouter:
      return l.router;
    case R::kExpertGate:
      return l.expert_gate.at(s.expert);
    case R::kExpertUp:
      return l.expert_up.at(s.expert);
    case R::kExpertDown:
      return l.expert_down.at(s.expert);
    case R::kSharedGate:
      return l.shared_gate;
    case R::kSharedUp:
      return l.shared_up;
    case R::kSharedDown:
      return l.shared_down;
    case R::kSharedExpertGate:
      return l.shared_expert_gate;
    case R::kMlpGate:
      return l.mlp_gate;
    case R::kMlpUp:
      return l.mlp_up;
    case R::kMlpDown:
      return l.mlp_down;
    default:
      return nullptr;
  }
}

int CountNonNull(const LayerWeights& l) {
  int n = 0;
  for (const TensorEntry* t :
       {l.input_norm, l.post_attn_norm, l.q, l.k, l.v, l.o, l.q_bias, l.k_bias, l.v_bias, l.q_norm,
        l.k_norm, l.router, l.shared_gate, l.shared_up, l.shared_down, l.shared_expert_gate,
        l.mlp_gate, l.mlp_up, l.mlp_down}) {
    n += t != nullptr;
  }
  for (const auto* v : {&l.expert_gate, &l.expert_up, &l.expert_down}) {
    for (const TensorEntry* t : *v) n += t != nullptr;
  }
  return n;
}

void ExpectFullyBound(const ModelConfig& c, const Checkpoint& ckpt, const ModelWeights& w) {
  ASSERT_EQ(static_cast<int>(w.layers.size()), c.num_layers);
  const std::vector<WeightSpec> specs = ExpectedWeights(c);
  std::vector<int> per_layer(c.num_layers, 0);
  for (const WeightSpec& s : specs) {
    SCOPED_TRACE(s.name);
    const TensorEntry* bound = BoundSlot(w, s);
    ASSERT_NE(bound, nullptr);
    EXPECT_EQ(bound, ckpt.Find(s.name));  // points at the checkpoint's own entry
    EXPECT_EQ(bound->name, s.name);
    EXPECT_EQ(bound->shape, s.shape);
    if (s.layer >= 0) ++per_layer[s.layer];
  }
  // Nothing else is set: slots without a spec stay null.
  for (int l = 0; l < c.num_layers; ++l) {
    EXPECT_EQ(CountNonNull(w.layers[l]), per_layer[l]) << "layer " << l;
    const size_t experts = c.IsMoeLayer(l) ? static_cast<size_t>(c.num_experts) : 0u;
    EXPECT_EQ(w.layers[l].expert_gate.size(), experts);
    EXPECT_EQ(w.layers[l].expert_up.size(), experts);
    EXPECT_EQ(w.layers[l].expert_down.size(), experts);
  }
  ASSERT_NE(w.embed, nullptr);
  ASSERT_NE(w.final_norm, nullptr);
  ASSERT_NE(w.lm_head, nullptr);
  if (c.tie_word_embeddings) {
    EXPECT_EQ(w.lm_head, w.embed);
  } else {
    EXPECT_NE(w.lm_head, w.embed);
    EXPECT_EQ(w.lm_head->name, "lm_head.weight");
  }
}

TEST(BindWeightsTest, BindsEverySlotForEveryArch) {
  for (ModelArch arch :
       {ModelArch::kQwen3Moe, ModelArch::kMixtral, ModelArch::kQwen2Moe, ModelArch::kOlmoe}) {
    for (bool tied : {false, true}) {
      SCOPED_TRACE(std::string(ModelArchName(arch)) + (tied ? " tied" : " untied"));
      ModelConfig c = Small(arch, /*layers=*/3, /*experts=*/3);
      c.tie_word_embeddings = tied;
      if (arch != ModelArch::kMixtral && arch != ModelArch::kOlmoe) c.mlp_only_layers = {1};
      ASSERT_TRUE(c.Validate().ok()) << c.Validate();
      auto ckpt = WriteCheckpoint(c, {}, "bind_ok");
      ASSERT_NE(ckpt, nullptr);
      StatusOr<ModelWeights> w = BindWeights(c, *ckpt);
      ASSERT_TRUE(w.ok()) << w.status();
      ExpectFullyBound(c, *ckpt, *w);
      if (arch == ModelArch::kQwen2Moe) {
        EXPECT_NE(w->layers[0].shared_expert_gate, nullptr);
        EXPECT_EQ(w->layers[0].q_bias->shape, (Shape{8}));
      } else {
        EXPECT_EQ(w->layers[0].shared_gate, nullptr);
        EXPECT_EQ(w->layers[0].q_bias, nullptr);
      }
      if (arch == ModelArch::kMixtral || arch == ModelArch::kQwen2Moe) {
        EXPECT_EQ(w->layers[0].q_norm, nullptr);
      }
    }
  }
}

TEST(BindWeightsTest, MissingTensorIsNamed) {
  const ModelConfig c = Small(ModelArch::kQwen3Moe, 2, 2);
  CheckpointEdits edits;
  edits.drop = {"model.layers.1.self_attn.k_proj.weight"};
  auto ckpt = WriteCheckpoint(c, edits, "bind_missing");
  ASSERT_NE(ckpt, nullptr);
  StatusOr<ModelWeights> w = BindWeights(c, *ckpt);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusMessage(w.status()),
            "checkpoint is missing 1 tensor(s) the config requires: "
            "model.layers.1.self_attn.k_proj.weight");
}

TEST(BindWeightsTest, ManyMissingTensorsAreCountedAndTruncated) {
  const ModelConfig c = Small(ModelArch::kMixtral, 1, 3);
  CheckpointEdits edits;
  for (int e = 0; e < 3; ++e) {
    for (const char* w : {"w1", "w2", "w3"}) {
      edits.drop.insert("model.layers.0.block_sparse_moe.experts." + std::to_string(e) + "." + w +
                        ".weight");
    }
  }
  auto ckpt = WriteCheckpoint(c, edits, "bind_many_missing");
  ASSERT_NE(ckpt, nullptr);
  StatusOr<ModelWeights> w = BindWeights(c, *ckpt);
  ASSERT_FALSE(w.ok());
  const std::string msg = StatusMessage(w.status());
  EXPECT_NE(msg.find("missing 9 tensor(s)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.layers.0.block_sparse_moe.experts.0.w1.weight"), std::string::npos);
  EXPECT_NE(msg.find(", ..."), std::string::npos) << msg;
  EXPECT_EQ(msg.find("experts.2.w2.weight"), std::string::npos) << "only 5 names shown: " << msg;
}

TEST(BindWeightsTest, MissingLmHeadWhenUntied) {
  const ModelConfig c = Small(ModelArch::kOlmoe);
  CheckpointEdits edits;
  edits.drop = {"lm_head.weight"};
  auto ckpt = WriteCheckpoint(c, edits, "bind_no_lm_head");
  StatusOr<ModelWeights> w = BindWeights(c, *ckpt);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(StatusMessage(w.status()).find("lm_head.weight"), std::string::npos);
}

TEST(BindWeightsTest, UnexpectedTensorIsNamed) {
  const ModelConfig c = Small(ModelArch::kQwen3Moe);
  CheckpointEdits edits;
  edits.extra.push_back(ZeroTensor("model.layers.0.mlp.experts.2.up_proj.weight", DType::kBF16,
                                   {6, 8}));  // an expert beyond num_experts
  auto ckpt = WriteCheckpoint(c, edits, "bind_unexpected");
  StatusOr<ModelWeights> w = BindWeights(c, *ckpt);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string msg = StatusMessage(w.status());
  EXPECT_NE(msg.find("unexpected tensor 'model.layers.0.mlp.experts.2.up_proj.weight'"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("qwen3_moe"), std::string::npos) << msg;
}

TEST(BindWeightsTest, BiasOnModelWithoutBiasIsUnexpected) {
  const ModelConfig c = Small(ModelArch::kMixtral);
  CheckpointEdits edits;
  edits.extra.push_back(ZeroTensor("model.layers.0.self_attn.q_proj.bias", DType::kBF16, {8}));
  auto ckpt = WriteCheckpoint(c, edits, "bind_unexpected_bias");
  StatusOr<ModelWeights> w = BindWeights(c, *ckpt);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(StatusMessage(w.status()).find("model.layers.0.self_attn.q_proj.bias"),
            std::string::npos);
}

TEST(BindWeightsTest, InvFreqBuffersAndTiedLmHeadIgnored) {
  ModelConfig c = Small(ModelArch::kQwen3Moe, 2, 2);
  c.tie_word_embeddings = true;
  CheckpointEdits edits;
  edits.extra.push_back(
      ZeroTensor("model.layers.0.self_attn.rotary_emb.inv_freq", DType::kF32, {2}));
  edits.extra.push_back(
      ZeroTensor("model.layers.1.self_attn.rotary_emb.inv_freq", DType::kF32, {2}));
  // Some tied checkpoints still carry an lm_head copy; it is ignored, never bound.
  edits.extra.push_back(ZeroTensor("lm_head.weight", DType::kBF16, {10, 8}));
  auto ckpt = WriteCheckpoint(c, edits, "bind_ignorable");
  StatusOr<ModelWeights> w = BindWeights(c, *ckpt);
  ASSERT_TRUE(w.ok()) << w.status();
  ExpectFullyBound(c, *ckpt, *w);
  EXPECT_EQ(w->lm_head, w->embed);
  EXPECT_EQ(w->lm_head->name, "model.embed_tokens.weight");
}

TEST(BindWeightsTest, WrongShapeNamesTensorAndBothShapes) {
  const ModelConfig c = Small(ModelArch::kQwen3Moe);
  CheckpointEdits edits;
  edits.reshape["model.layers.0.self_attn.q_proj.weight"] = {8, 7};
  auto ckpt = WriteCheckpoint(c, edits, "bind_shape");
  StatusOr<ModelWeights> w = BindWeights(c, *ckpt);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string msg = StatusMessage(w.status());
  EXPECT_NE(msg.find("'model.layers.0.self_attn.q_proj.weight' has shape [8, 7] but the config "
                     "implies [8, 8]"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
}

TEST(BindWeightsTest, WrongRankAndTransposedShapesRejected) {
  const ModelConfig c = Small(ModelArch::kMixtral);
  const std::string w2 = "model.layers.0.block_sparse_moe.experts.1.w2.weight";
  for (const Shape& bad : {Shape{6, 8}, Shape{48}, Shape{1, 8, 6}, Shape{}}) {
    CheckpointEdits edits;
    edits.reshape[w2] = bad;
    auto ckpt = WriteCheckpoint(c, edits, "bind_rank");
    StatusOr<ModelWeights> w = BindWeights(c, *ckpt);
    ASSERT_FALSE(w.ok());
    const std::string msg = StatusMessage(w.status());
    EXPECT_NE(msg.find(w2), std::string::npos) << msg;
    EXPECT_NE(msg.find("[8, 6]"), std::string::npos) << msg;
  }
  // A norm with the wrong length.
  CheckpointEdits edits;
  edits.reshape["model.norm.weight"] = {9};
  auto ckpt = WriteCheckpoint(c, edits, "bind_norm_shape");
  StatusOr<ModelWeights> w = BindWeights(c, *ckpt);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(StatusMessage(w.status())
                .find("'model.norm.weight' has shape [9] but the config "
                      "implies [8]"),
            std::string::npos)
      << w.status();
}

TEST(BindWeightsTest, NonFloatDtypeRejected) {
  const ModelConfig c = Small(ModelArch::kQwen3Moe);
  for (DType bad : {DType::kI32, DType::kI64, DType::kU8}) {
    CheckpointEdits edits;
    edits.dtype["model.layers.0.mlp.gate.weight"] = bad;
    auto ckpt = WriteCheckpoint(c, edits, "bind_dtype");
    StatusOr<ModelWeights> w = BindWeights(c, *ckpt);
    ASSERT_FALSE(w.ok()) << DTypeName(bad);
    EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string msg = StatusMessage(w.status());
    EXPECT_NE(msg.find("'model.layers.0.mlp.gate.weight' has dtype " + std::string(DTypeName(bad))),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("BF16, F16 or F32"), std::string::npos) << msg;
  }
}

TEST(BindWeightsTest, MixedFloatDtypesAccepted) {
  const ModelConfig c = Small(ModelArch::kQwen2Moe, 1, 2);
  CheckpointEdits edits;
  const std::vector<WeightSpec> specs = ExpectedWeights(c);
  const DType cycle[] = {DType::kBF16, DType::kF16, DType::kF32};
  for (size_t i = 0; i < specs.size(); ++i) edits.dtype[specs[i].name] = cycle[i % 3];
  auto ckpt = WriteCheckpoint(c, edits, "bind_mixed");
  StatusOr<ModelWeights> w = BindWeights(c, *ckpt);
  ASSERT_TRUE(w.ok()) << w.status();
  ExpectFullyBound(c, *ckpt, *w);
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorEntry* t = BoundSlot(*w, specs[i]);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->dtype, cycle[i % 3]) << specs[i].name;
    EXPECT_EQ(t->num_bytes, ByteCount(specs[i].shape, cycle[i % 3])) << specs[i].name;
  }
}

TEST(BindWeightsTest, ShardedCheckpoint) {
  // The same tensors split over two files with an index: binding does not care about files.
  const ModelConfig c = Small(ModelArch::kMixtral, 2, 2);
  const std::string dir = moe::testing::MakeScratchDir("bind_sharded");
  const std::vector<WeightSpec> specs = ExpectedWeights(c);
  std::vector<TensorToWrite> shard[2];
  std::string index = "{\"metadata\": {}, \"weight_map\": {";
  for (size_t i = 0; i < specs.size(); ++i) {
    const int s = i < specs.size() / 2 ? 0 : 1;
    shard[s].push_back(ZeroTensor(specs[i].name, DType::kBF16, specs[i].shape));
    index += (i ? ", \"" : "\"") + specs[i].name + "\": \"model-0000" + std::to_string(s + 1) +
             "-of-00002.safetensors\"";
  }
  index += "}}";
  ASSERT_TRUE(WriteSafetensors(dir + "/model-00001-of-00002.safetensors", shard[0]).ok());
  ASSERT_TRUE(WriteSafetensors(dir + "/model-00002-of-00002.safetensors", shard[1]).ok());
  {
    std::ofstream out(dir + "/model.safetensors.index.json");
    out << index;
  }
  StatusOr<std::unique_ptr<Checkpoint>> ckpt = Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  StatusOr<ModelWeights> w = BindWeights(c, **ckpt);
  ASSERT_TRUE(w.ok()) << w.status();
  ExpectFullyBound(c, **ckpt, *w);
  EXPECT_NE(w->embed->file, w->lm_head->file);
}

// ---------------------------------------------------------------------------------------------
// OpenModelDirectory

TEST(OpenModelDirectoryTest, OpensConfigAndCheckpoint) {
  ModelConfig c = Small(ModelArch::kQwen3Moe, 2, 2);
  c.architecture = "Qwen3MoeForCausalLM";
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  const std::string dir = moe::testing::MakeScratchDir("open_dir_full");
  std::vector<TensorToWrite> tensors;
  for (const WeightSpec& s : ExpectedWeights(c)) {
    tensors.push_back(ZeroTensor(s.name, DType::kBF16, s.shape));
  }
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", tensors).ok());
  {
    std::ofstream out(dir + "/config.json");
    out << ConfigJson(c, 0);
  }
  StatusOr<std::unique_ptr<LoadedModel>> loaded = OpenModelDirectory(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->dir, dir);
  EXPECT_EQ((*loaded)->config.hidden_size, 8);
  EXPECT_EQ((*loaded)->config.num_layers, 2);
  EXPECT_EQ((*loaded)->checkpoint->num_tensors(), ExpectedWeights(c).size());
  ExpectFullyBound((*loaded)->config, *(*loaded)->checkpoint, (*loaded)->weights);
}

TEST(OpenModelDirectoryTest, Errors) {
  // Missing directory: the config is the first thing read.
  const std::string missing = moe::testing::MakeScratchDir("open_missing") + "/nope";
  StatusOr<std::unique_ptr<LoadedModel>> loaded = OpenModelDirectory(missing);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(StatusMessage(loaded.status()).find("config.json"), std::string::npos);

  // A config whose checkpoint lacks a tensor.
  ModelConfig c = Small(ModelArch::kQwen3Moe);
  const std::string dir = moe::testing::MakeScratchDir("open_incomplete");
  std::vector<TensorToWrite> tensors;
  for (const WeightSpec& s : ExpectedWeights(c)) {
    if (s.name != "model.norm.weight") tensors.push_back(ZeroTensor(s.name, DType::kBF16, s.shape));
  }
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", tensors).ok());
  {
    std::ofstream out(dir + "/config.json");
    out << ConfigJson(c, 0);
  }
  loaded = OpenModelDirectory(dir);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(StatusMessage(loaded.status()).find("model.norm.weight"), std::string::npos)
      << loaded.status();
}

}  // namespace
}  // namespace moe::model
