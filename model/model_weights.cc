#include "model/model_weights.h"

#include <set>

#include "core/check.h"

#include "absl/strings/str_join.h"

namespace moe::model {
namespace {

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

const TensorEntry** Slot(ModelWeights* w, const WeightSpec& spec) {
  if (spec.layer < 0) {
    switch (spec.role) {
      case WeightRole::kEmbed:
        return &w->embed;
      case WeightRole::kFinalNorm:
        return &w->final_norm;
      case WeightRole::kLmHead:
        return &w->lm_head;
      default:
        return nullptr;
    }
  }
  LayerWeights& l = w->layers[spec.layer];
  switch (spec.role) {
    case WeightRole::kInputNorm:
      return &l.input_norm;
    case WeightRole::kPostAttnNorm:
      return &l.post_attn_norm;
    case WeightRole::kQ:
      return &l.q;
    case WeightRole::kK:
      return &l.k;
    case WeightRole::kV:
      return &l.v;
    case WeightRole::kO:
      return &l.o;
    case WeightRole::kQBias:
      return &l.q_bias;
    case WeightRole::kKBias:
      return &l.k_bias;
    case WeightRole::kVBias:
      return &l.v_bias;
    case WeightRole::kQNorm:
      return &l.q_norm;
    case WeightRole::kKNorm:
      return &l.k_norm;
    case WeightRole::kRouter:
      return &l.router;
    case WeightRole::kExpertGate:
      return &l.expert_gate[spec.expert];
    case WeightRole::kExpertUp:
      return &l.expert_up[spec.expert];
    case WeightRole::kExpertDown:
      return &l.expert_down[spec.expert];
    case WeightRole::kSharedGate:
      return &l.shared_gate;
    case WeightRole::kSharedUp:
      return &l.shared_up;
    case WeightRole::kSharedDown:
      return &l.shared_down;
    case WeightRole::kSharedExpertGate:
      return &l.shared_expert_gate;
    case WeightRole::kMlpGate:
      return &l.mlp_gate;
    case WeightRole::kMlpUp:
      return &l.mlp_up;
    case WeightRole::kMlpDown:
      return &l.mlp_down;
    default:
      return nullptr;
  }
}

}  // namespace

StatusOr<ModelWeights> BindWeights(const ModelConfig& config, const Checkpoint& checkpoint) {
  ModelWeights w;
  w.layers.resize(config.num_layers);
  for (int l = 0; l < config.num_layers; ++l) {
    if (config.IsMoeLayer(l)) {
      w.layers[l].expert_gate.resize(config.num_experts);
      w.layers[l].expert_up.resize(config.num_experts);
      w.layers[l].expert_down.resize(config.num_experts);
    }
  }
  std::set<std::string> expected;
  std::vector<std::string> missing;
  for (const WeightSpec& spec : ExpectedWeights(config)) {
    expected.insert(spec.name);
    const TensorEntry* t = checkpoint.Find(spec.name);
    if (t == nullptr) {
      missing.push_back(spec.name);
      continue;
    }
    if (t->dtype != DType::kBF16 && t->dtype != DType::kF16 && t->dtype != DType::kF32) {
      return InvalidArgument(t->file, ": tensor '", t->name, "' has dtype ", DTypeName(t->dtype),
                             "; weights must be BF16, F16 or F32");
    }
    if (t->shape != spec.shape) {
      return InvalidArgument(t->file, ": tensor '", t->name, "' has shape ", ShapeText(t->shape),
                             " but the config implies ", ShapeText(spec.shape));
    }
    const TensorEntry** slot = Slot(&w, spec);
    MOE_CHECK(slot != nullptr) << "no slot for " << spec.name;
    *slot = t;
  }
  if (!missing.empty()) {
    const size_t shown = std::min<size_t>(missing.size(), 5);
    return InvalidArgument(
        "checkpoint is missing ", missing.size(), " tensor(s) the config ",
        "requires: ", absl::StrJoin(missing.begin(), missing.begin() + shown, ", "),
        missing.size() > shown ? ", ..." : "");
  }
  for (const std::string& name : checkpoint.Names()) {
    if (expected.count(name) == 0 && !IsIgnorableTensor(config, name)) {
      return InvalidArgument(checkpoint.Find(name)->file, ": unexpected tensor '", name,
                             "' (not part of a ", ModelArchName(config.arch), " model with this ",
                             "config)");
    }
  }
  if (config.tie_word_embeddings) w.lm_head = w.embed;
  return w;
}

StatusOr<std::unique_ptr<LoadedModel>> OpenModelDirectory(const std::string& dir) {
  auto loaded = std::make_unique<LoadedModel>();
  loaded->dir = dir;
  MOE_ASSIGN_OR_RETURN(loaded->config, ModelConfig::FromDirectory(dir));
  MOE_ASSIGN_OR_RETURN(loaded->checkpoint, Checkpoint::Open(dir));
  MOE_ASSIGN_OR_RETURN(loaded->weights, BindWeights(loaded->config, *loaded->checkpoint));
  return loaded;
}

}  // namespace moe::model
