#include "model/weight_names.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace moe::model {

bool IsNormRole(WeightRole role) {
  return role == WeightRole::kFinalNorm || role == WeightRole::kInputNorm ||
         role == WeightRole::kPostAttnNorm || role == WeightRole::kQNorm ||
         role == WeightRole::kKNorm;
}

bool IsBiasRole(WeightRole role) {
  return role == WeightRole::kQBias || role == WeightRole::kKBias || role == WeightRole::kVBias;
}

std::vector<WeightSpec> ExpectedWeights(const ModelConfig& c) {
  std::vector<WeightSpec> out;
  const int64_t h = c.hidden_size;
  const int64_t q = c.q_size();
  const int64_t kv = c.kv_size();
  const int64_t f = c.moe_intermediate_size;
  auto add = [&out](std::string name, WeightRole role, int layer, int expert,
                    std::vector<int64_t> shape) {
    out.push_back(WeightSpec{std::move(name), role, layer, expert, std::move(shape)});
  };

  add("model.embed_tokens.weight", WeightRole::kEmbed, -1, -1, {c.vocab_size, h});
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    add(p + "input_layernorm.weight", WeightRole::kInputNorm, l, -1, {h});
    add(p + "self_attn.q_proj.weight", WeightRole::kQ, l, -1, {q, h});
    add(p + "self_attn.k_proj.weight", WeightRole::kK, l, -1, {kv, h});
    add(p + "self_attn.v_proj.weight", WeightRole::kV, l, -1, {kv, h});
    if (c.qkv_bias) {
      add(p + "self_attn.q_proj.bias", WeightRole::kQBias, l, -1, {q});
      add(p + "self_attn.k_proj.bias", WeightRole::kKBias, l, -1, {kv});
      add(p + "self_attn.v_proj.bias", WeightRole::kVBias, l, -1, {kv});
    }
    add(p + "self_attn.o_proj.weight", WeightRole::kO, l, -1, {h, q});
    if (c.qk_norm == QkNormKind::kPerHead) {
      add(p + "self_attn.q_norm.weight", WeightRole::kQNorm, l, -1, {c.head_dim});
      add(p + "self_attn.k_norm.weight", WeightRole::kKNorm, l, -1, {c.head_dim});
    } else if (c.qk_norm == QkNormKind::kFull) {
      add(p + "self_attn.q_norm.weight", WeightRole::kQNorm, l, -1, {q});
      add(p + "self_attn.k_norm.weight", WeightRole::kKNorm, l, -1, {kv});
    }
    add(p + "post_attention_layernorm.weight", WeightRole::kPostAttnNorm, l, -1, {h});

    if (!c.IsMoeLayer(l)) {
      const int64_t i = c.intermediate_size;
      add(p + "mlp.gate_proj.weight", WeightRole::kMlpGate, l, -1, {i, h});
      add(p + "mlp.up_proj.weight", WeightRole::kMlpUp, l, -1, {i, h});
      add(p + "mlp.down_proj.weight", WeightRole::kMlpDown, l, -1, {h, i});
      continue;
    }
    if (c.arch == ModelArch::kMixtral) {
      add(p + "block_sparse_moe.gate.weight", WeightRole::kRouter, l, -1, {c.num_experts, h});
      for (int e = 0; e < c.num_experts; ++e) {
        const std::string ep = absl::StrCat(p, "block_sparse_moe.experts.", e, ".");
        add(ep + "w1.weight", WeightRole::kExpertGate, l, e, {f, h});
        add(ep + "w3.weight", WeightRole::kExpertUp, l, e, {f, h});
        add(ep + "w2.weight", WeightRole::kExpertDown, l, e, {h, f});
      }
    } else {
      add(p + "mlp.gate.weight", WeightRole::kRouter, l, -1, {c.num_experts, h});
      for (int e = 0; e < c.num_experts; ++e) {
        const std::string ep = absl::StrCat(p, "mlp.experts.", e, ".");
        add(ep + "gate_proj.weight", WeightRole::kExpertGate, l, e, {f, h});
        add(ep + "up_proj.weight", WeightRole::kExpertUp, l, e, {f, h});
        add(ep + "down_proj.weight", WeightRole::kExpertDown, l, e, {h, f});
      }
      if (c.shared_expert_intermediate_size > 0) {
        const int64_t fs = c.shared_expert_intermediate_size;
        add(p + "mlp.shared_expert.gate_proj.weight", WeightRole::kSharedGate, l, -1, {fs, h});
        add(p + "mlp.shared_expert.up_proj.weight", WeightRole::kSharedUp, l, -1, {fs, h});
        add(p + "mlp.shared_expert.down_proj.weight", WeightRole::kSharedDown, l, -1, {h, fs});
        add(p + "mlp.shared_expert_gate.weight", WeightRole::kSharedExpertGate, l, -1, {1, h});
      }
    }
  }
  add("model.norm.weight", WeightRole::kFinalNorm, -1, -1, {h});
  if (!c.tie_word_embeddings) add("lm_head.weight", WeightRole::kLmHead, -1, -1, {c.vocab_size, h});
  return out;
}

bool IsIgnorableTensor(const ModelConfig& config, const std::string& name) {
  if (absl::EndsWith(name, ".rotary_emb.inv_freq")) return true;
  if (config.tie_word_embeddings && name == "lm_head.weight") return true;
  return false;
}

}  // namespace moe::model
