#include "engine/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/clock.h"

namespace moe::engine {

using model::LayerWeights;
using model::TensorEntry;

struct Model::LayerParams {
  std::unique_ptr<Buffer> input_norm;      // [H] F32
  std::unique_ptr<Buffer> post_attn_norm;  // [H] F32
  std::unique_ptr<Buffer> q_norm;          // [head_dim] or [q_size]; null without q/k norm
  std::unique_ptr<Buffer> k_norm;
  std::unique_ptr<PackedLinear> qkv;  // [q + 2 kv, H]
  std::unique_ptr<PackedLinear> o;    // [H, q]
  // MoE layers.
  std::unique_ptr<PackedLinear> router;  // [E, H]
  std::unique_ptr<PackedExperts> experts;
  std::unique_ptr<PackedLinear> shared_gate_up;      // [2 Fs, H]
  std::unique_ptr<PackedLinear> shared_down;         // [H, Fs]
  std::unique_ptr<PackedLinear> shared_expert_gate;  // [1, H]
  // Dense MLP layers.
  std::unique_ptr<PackedLinear> mlp_gate_up;  // [2 I, H]
  std::unique_ptr<PackedLinear> mlp_down;     // [H, I]
};

// Every buffer one Forward touches, sized for ModelRuntimeConfig's maxima. Views are taken per
// step with the step's row counts.
struct Model::Workspace {
  std::vector<std::unique_ptr<Buffer>> owned;
  // Activations ([capacity, width] in the activation dtype unless noted).
  TensorView x;                       // [T, H] residual stream
  TensorView h;                       // [T, H] normed input of a block
  TensorView tmp;                     // [T, H] block output, added into x by the next norm
  TensorView qkv;                     // [T, q + 2 kv]
  TensorView attn;                    // [T, q]
  TensorView router_logits;           // [T, E]
  TensorView rows;                    // [T * k, H] expert-grouped rows
  TensorView act;                     // [max(T * k, T), max F] expert / MLP activations
  TensorView y_rows;                  // [T * k, H]
  TensorView gate_up;                 // [T, 2 * max(I, Fs)] dense / shared gate|up output
  TensorView shared_out;              // [T, H]
  TensorView shared_gate;             // [T, 1]
  TensorView final_in;                // [L, H] residual rows needing logits
  TensorView final_add;               // [L, H]
  TensorView final_h;                 // [L, H]
  TensorView logits;                  // [L, V] F32
  int32_t* expert_ids = nullptr;      // [T, k]
  float* expert_weights = nullptr;    // [T, k] F32
  int32_t* expert_offsets = nullptr;  // [E + 1]
  int32_t* row_to_token = nullptr;    // [T * k]
  int32_t* slot_to_row = nullptr;     // [T, k]
  // Batch metadata.
  int32_t* token_ids = nullptr;       // [T]
  int32_t* positions = nullptr;       // [T]
  int64_t* slot_mapping = nullptr;    // [T]
  int32_t* query_start = nullptr;     // [S + 1]
  int32_t* block_tables = nullptr;    // [S, max_blocks_per_seq]
  int32_t* logits_indices = nullptr;  // [L]
  int max_blocks_per_seq = 0;         // row stride of block_tables this step
};

Status ModelRuntimeConfig::Validate() const {
  if (activation_dtype != DType::kF32 && activation_dtype != DType::kBF16) {
    return InvalidArgument("activation dtype must be f32 or bf16");
  }
  if (max_tokens <= 0) return InvalidArgument("max_tokens must be positive");
  if (max_seqs <= 0) return InvalidArgument("max_seqs must be positive");
  if (max_context <= 0) return InvalidArgument("max_context must be positive");
  if (block_size <= 0) return InvalidArgument("block_size must be positive");
  if (max_logit_rows < 0) return InvalidArgument("max_logit_rows must be >= 0");
  if (router_top_p < 0.f || router_top_p > 1.f) {
    return InvalidArgument("router_top_p must be in [0, 1]");
  }
  return OkStatus();
}

Model::Model(const model::ModelConfig& config, Backend* backend, const ModelRuntimeConfig& runtime)
    : config_(config), backend_(backend), runtime_(runtime) {
  if (runtime_.max_logit_rows == 0) runtime_.max_logit_rows = runtime_.max_tokens;
  if (runtime_.max_blocks_per_seq == 0) {
    runtime_.max_blocks_per_seq =
        (runtime_.max_context + runtime_.block_size - 1) / runtime_.block_size;
  }
}

Model::~Model() = default;

StatusOr<std::unique_ptr<Model>> Model::Create(const model::LoadedModel& loaded, Backend* backend,
                                               const ModelRuntimeConfig& runtime) {
  MOE_RETURN_IF_ERROR(runtime.Validate());
  MOE_RETURN_IF_ERROR(loaded.config.Validate());
  auto m = std::unique_ptr<Model>(new Model(loaded.config, backend, runtime));
  MOE_RETURN_IF_ERROR(m->PackWeights(loaded.weights));
  MOE_RETURN_IF_ERROR(m->AllocateWorkspace());
  const model::ModelConfig& c = m->config_;
  BackendLimits limits;
  limits.max_tokens = m->runtime_.max_tokens;
  limits.max_seqs = m->runtime_.max_seqs;
  limits.max_context = m->runtime_.max_context;
  limits.num_heads = c.num_heads;
  limits.num_kv_heads = c.num_kv_heads;
  limits.head_dim = c.head_dim;
  limits.hidden = c.hidden_size;
  limits.num_experts = c.num_experts;
  limits.top_k = c.num_experts_per_tok;
  limits.max_intermediate =
      std::max({c.moe_intermediate_size, c.intermediate_size, c.shared_expert_intermediate_size});
  MOE_RETURN_IF_ERROR(backend->Reserve(limits));
  return m;
}

Status Model::PackWeights(const model::ModelWeights& w) {
  auto add_bytes = [this](size_t bytes) { packed_weight_bytes_ += bytes; };
  auto norm = [&](const TensorEntry* t, std::unique_ptr<Buffer>* out) -> Status {
    if (t == nullptr) return OkStatus();
    MOE_ASSIGN_OR_RETURN(*out, backend_->UploadF32(*t));
    add_bytes((*out)->size());
    return OkStatus();
  };
  auto linear = [&](const LinearSource& source, std::unique_ptr<PackedLinear>* out) -> Status {
    MOE_ASSIGN_OR_RETURN(*out, backend_->PackLinear(source));
    add_bytes((*out)->packed_bytes);
    return OkStatus();
  };

  MOE_ASSIGN_OR_RETURN(embedding_, backend_->PackEmbedding(*w.embed));
  add_bytes(embedding_->packed_bytes);
  MOE_RETURN_IF_ERROR(norm(w.final_norm, &final_norm_));
  MOE_RETURN_IF_ERROR(linear(LinearSource{{w.lm_head}, {}}, &lm_head_));

  for (int l = 0; l < config_.num_layers; ++l) {
    const LayerWeights& lw = w.layers[l];
    auto p = std::make_unique<LayerParams>();
    MOE_RETURN_IF_ERROR(norm(lw.input_norm, &p->input_norm));
    MOE_RETURN_IF_ERROR(norm(lw.post_attn_norm, &p->post_attn_norm));
    MOE_RETURN_IF_ERROR(norm(lw.q_norm, &p->q_norm));
    MOE_RETURN_IF_ERROR(norm(lw.k_norm, &p->k_norm));
    LinearSource qkv{{lw.q, lw.k, lw.v}, {}};
    if (config_.qkv_bias) qkv.biases = {lw.q_bias, lw.k_bias, lw.v_bias};
    MOE_RETURN_IF_ERROR(linear(qkv, &p->qkv));
    MOE_RETURN_IF_ERROR(linear(LinearSource{{lw.o}, {}}, &p->o));
    if (config_.IsMoeLayer(l)) {
      MOE_RETURN_IF_ERROR(linear(LinearSource{{lw.router}, {}}, &p->router));
      MOE_ASSIGN_OR_RETURN(p->experts, backend_->PackExperts(ExpertsSource{
                                           lw.expert_gate, lw.expert_up, lw.expert_down}));
      add_bytes(p->experts->packed_bytes);
      if (lw.shared_gate != nullptr) {
        MOE_RETURN_IF_ERROR(
            linear(LinearSource{{lw.shared_gate, lw.shared_up}, {}}, &p->shared_gate_up));
        MOE_RETURN_IF_ERROR(linear(LinearSource{{lw.shared_down}, {}}, &p->shared_down));
        MOE_RETURN_IF_ERROR(
            linear(LinearSource{{lw.shared_expert_gate}, {}}, &p->shared_expert_gate));
      }
    } else {
      MOE_RETURN_IF_ERROR(linear(LinearSource{{lw.mlp_gate, lw.mlp_up}, {}}, &p->mlp_gate_up));
      MOE_RETURN_IF_ERROR(linear(LinearSource{{lw.mlp_down}, {}}, &p->mlp_down));
    }
    layers_.push_back(std::move(p));
  }
  return OkStatus();
}

Status Model::AllocateWorkspace() {
  ws_ = std::make_unique<Workspace>();
  Workspace& ws = *ws_;
  const DType act = runtime_.activation_dtype;
  const int64_t t = runtime_.max_tokens;
  const int64_t s = runtime_.max_seqs;
  const int64_t k = config_.num_experts_per_tok;
  const int64_t h = config_.hidden_size;
  const int64_t l = runtime_.max_logit_rows;
  const int64_t max_f = std::max({config_.moe_intermediate_size, config_.intermediate_size,
                                  config_.shared_expert_intermediate_size});
  const int64_t max_dense_f =
      std::max(config_.intermediate_size, config_.shared_expert_intermediate_size);

  auto alloc = [&](size_t bytes) -> StatusOr<void*> {
    MOE_ASSIGN_OR_RETURN(auto buffer, backend_->Allocate(std::max<size_t>(bytes, 64)));
    void* data = buffer->data();
    workspace_bytes_ += buffer->size();
    ws.owned.push_back(std::move(buffer));
    return data;
  };
  auto matrix = [&](TensorView* view, DType dtype, int64_t rows, int64_t cols) -> Status {
    MOE_ASSIGN_OR_RETURN(void* data, alloc(static_cast<size_t>(rows * cols) * DTypeSize(dtype)));
    *view = TensorView::Contiguous(data, dtype, rows, cols);
    return OkStatus();
  };
  auto ints = [&](auto** ptr, int64_t count) -> Status {
    MOE_ASSIGN_OR_RETURN(void* data, alloc(static_cast<size_t>(count) * sizeof(**ptr)));
    *ptr = static_cast<std::remove_pointer_t<decltype(ptr)>>(data);
    return OkStatus();
  };

  MOE_RETURN_IF_ERROR(matrix(&ws.x, act, t, h));
  MOE_RETURN_IF_ERROR(matrix(&ws.h, act, t, h));
  MOE_RETURN_IF_ERROR(matrix(&ws.tmp, act, t, h));
  MOE_RETURN_IF_ERROR(matrix(&ws.qkv, act, t, config_.q_size() + 2 * config_.kv_size()));
  MOE_RETURN_IF_ERROR(matrix(&ws.attn, act, t, config_.q_size()));
  MOE_RETURN_IF_ERROR(matrix(&ws.router_logits, act, t, config_.num_experts));
  MOE_RETURN_IF_ERROR(matrix(&ws.rows, act, t * k, h));
  MOE_RETURN_IF_ERROR(matrix(&ws.act, act, std::max(t * k, t), max_f));
  MOE_RETURN_IF_ERROR(matrix(&ws.y_rows, act, t * k, h));
  if (max_dense_f > 0) MOE_RETURN_IF_ERROR(matrix(&ws.gate_up, act, t, 2 * max_dense_f));
  if (config_.shared_expert_intermediate_size > 0) {
    MOE_RETURN_IF_ERROR(matrix(&ws.shared_out, act, t, h));
    MOE_RETURN_IF_ERROR(matrix(&ws.shared_gate, act, t, 1));
  }
  MOE_RETURN_IF_ERROR(matrix(&ws.final_in, act, l, h));
  MOE_RETURN_IF_ERROR(matrix(&ws.final_add, act, l, h));
  MOE_RETURN_IF_ERROR(matrix(&ws.final_h, act, l, h));
  MOE_RETURN_IF_ERROR(matrix(&ws.logits, DType::kF32, l, config_.vocab_size));
  MOE_RETURN_IF_ERROR(ints(&ws.expert_ids, t * k));
  MOE_RETURN_IF_ERROR(ints(&ws.expert_weights, t * k));
  MOE_RETURN_IF_ERROR(ints(&ws.expert_offsets, config_.num_experts + 1));
  MOE_RETURN_IF_ERROR(ints(&ws.row_to_token, t * k));
  MOE_RETURN_IF_ERROR(ints(&ws.slot_to_row, t * k));
  MOE_RETURN_IF_ERROR(ints(&ws.token_ids, t));
  MOE_RETURN_IF_ERROR(ints(&ws.positions, t));
  MOE_RETURN_IF_ERROR(ints(&ws.slot_mapping, t));
  MOE_RETURN_IF_ERROR(ints(&ws.query_start, s + 1));
  MOE_RETURN_IF_ERROR(ints(&ws.block_tables, s * runtime_.max_blocks_per_seq));
  MOE_RETURN_IF_ERROR(ints(&ws.logits_indices, l));
  host_block_tables_.reserve(static_cast<size_t>(s) * runtime_.max_blocks_per_seq);
  return OkStatus();
}

Status Model::UploadBatch(const batching::TokenBatch& batch) {
  const int t = batch.num_tokens();
  const int s = batch.num_seqs();
  const int width = batch.max_blocks_per_seq();
  if (t > runtime_.max_tokens) {
    return InvalidArgument("batch of ", t, " tokens exceeds max_tokens ", runtime_.max_tokens);
  }
  if (s > runtime_.max_seqs) {
    return InvalidArgument("batch of ", s, " sequences exceeds max_seqs ", runtime_.max_seqs);
  }
  if (width > runtime_.max_blocks_per_seq) {
    return InvalidArgument("a block table of ", width, " blocks exceeds max_blocks_per_seq ",
                           runtime_.max_blocks_per_seq);
  }
  if (static_cast<int>(batch.logits_indices.size()) > runtime_.max_logit_rows) {
    return InvalidArgument(batch.logits_indices.size(), " logit rows exceed max_logit_rows ",
                           runtime_.max_logit_rows);
  }
  if (batch.block_size != runtime_.block_size) {
    return InvalidArgument("batch block size ", batch.block_size, " != model block size ",
                           runtime_.block_size);
  }
  for (int i = 0; i < t; ++i) {
    if (batch.token_ids[i] < 0 || batch.token_ids[i] >= config_.vocab_size) {
      return InvalidArgument("token id ", batch.token_ids[i], " at row ", i,
                             " is outside the vocabulary [0, ", config_.vocab_size, ")");
    }
    if (batch.positions[i] >= runtime_.max_context) {
      return InvalidArgument("position ", batch.positions[i], " exceeds max_context ",
                             runtime_.max_context);
    }
  }
  MOE_RETURN_IF_ERROR(batch.Validate());
  Workspace& ws = *ws_;
  const Stream st{};
  MOE_RETURN_IF_ERROR(backend_->CopyToDevice(ws.token_ids, batch.token_ids.data(), t * 4, st));
  MOE_RETURN_IF_ERROR(backend_->CopyToDevice(ws.positions, batch.positions.data(), t * 4, st));
  MOE_RETURN_IF_ERROR(
      backend_->CopyToDevice(ws.slot_mapping, batch.slot_mapping.data(), t * 8, st));
  MOE_RETURN_IF_ERROR(
      backend_->CopyToDevice(ws.query_start, batch.query_start.data(), (s + 1) * 4, st));
  host_block_tables_.assign(static_cast<size_t>(s) * std::max(width, 1), -1);
  for (int i = 0; i < s; ++i) {
    std::copy(batch.block_tables[i].begin(), batch.block_tables[i].end(),
              host_block_tables_.begin() + static_cast<size_t>(i) * width);
  }
  ws.max_blocks_per_seq = std::max(width, 1);
  MOE_RETURN_IF_ERROR(backend_->CopyToDevice(ws.block_tables, host_block_tables_.data(),
                                             host_block_tables_.size() * 4, st));
  MOE_RETURN_IF_ERROR(backend_->CopyToDevice(ws.logits_indices, batch.logits_indices.data(),
                                             batch.logits_indices.size() * 4, st));
  return OkStatus();
}

Status Model::AttentionBlock(int layer, const batching::TokenBatch& batch, const KvCache& cache,
                             int n) {
  Workspace& ws = *ws_;
  LayerParams& p = *layers_[layer];
  const Stream st{};
  const int q = config_.q_size();
  const int kv = config_.kv_size();
  TensorView qkv = ws.qkv.RowRange(0, n);
  TensorView q_view = qkv.ColRange(0, q);
  TensorView k_view = qkv.ColRange(q, kv);
  TensorView v_view = qkv.ColRange(q + kv, kv);
  MOE_RETURN_IF_ERROR(backend_->Linear(LinearArgs{ws.h.RowRange(0, n), p.qkv.get(), qkv}, st));

  QkNormRopeArgs rope;
  rope.q = q_view;
  rope.k = k_view;
  rope.positions = ws.positions;
  rope.num_tokens = n;
  rope.num_heads = config_.num_heads;
  rope.num_kv_heads = config_.num_kv_heads;
  rope.head_dim = config_.head_dim;
  rope.norm = config_.qk_norm;
  rope.q_norm_weight = p.q_norm ? p.q_norm->as<float>() : nullptr;
  rope.k_norm_weight = p.k_norm ? p.k_norm->as<float>() : nullptr;
  rope.eps = static_cast<float>(config_.rms_norm_eps);
  rope.rope_theta = static_cast<float>(config_.rope_theta);
  MOE_RETURN_IF_ERROR(backend_->QkNormRope(rope, st));

  const KvCacheView layer_cache = cache.Layer(layer);
  MOE_RETURN_IF_ERROR(
      backend_->KvWrite(KvWriteArgs{k_view, v_view, ws.slot_mapping, n, layer_cache}, st));

  AttentionArgs attn;
  attn.q = q_view;
  attn.cache = layer_cache;
  attn.query_start = ws.query_start;
  attn.positions = ws.positions;
  attn.block_tables = ws.block_tables;
  attn.max_blocks_per_seq = ws.max_blocks_per_seq;
  attn.num_seqs = batch.num_seqs();
  attn.num_tokens = n;
  attn.num_heads = config_.num_heads;
  attn.num_kv_heads = config_.num_kv_heads;
  attn.head_dim = config_.head_dim;
  attn.scale = 1.0f / std::sqrt(static_cast<float>(config_.head_dim));
  attn.out = ws.attn.RowRange(0, n);
  MOE_RETURN_IF_ERROR(backend_->Attention(attn, st));
  return backend_->Linear(LinearArgs{ws.attn.RowRange(0, n), p.o.get(), ws.tmp.RowRange(0, n)}, st);
}

Status Model::MoeBlock(int layer, int n, RoutingTrace* trace, ForwardOpTimes* times) {
  Workspace& ws = *ws_;
  LayerParams& p = *layers_[layer];
  const Stream st{};
  const int k = config_.num_experts_per_tok;
  const TensorView h = ws.h.RowRange(0, n);
  MOE_RETURN_IF_ERROR(
      backend_->Linear(LinearArgs{h, p.router.get(), ws.router_logits.RowRange(0, n)}, st));

  RouterTopKArgs router;
  router.logits = ws.router_logits.RowRange(0, n);
  router.num_tokens = n;
  router.num_experts = config_.num_experts;
  router.top_k = k;
  router.kind = config_.router;
  router.renormalize = config_.norm_topk_prob;
  router.top_p = runtime_.router_top_p;
  router.expert_ids = ws.expert_ids;
  router.expert_weights = ws.expert_weights;
  MOE_RETURN_IF_ERROR(backend_->RouterTopK(router, st));
  if (trace != nullptr) {
    const size_t at = trace->expert_ids.size();
    trace->moe_layers.push_back(layer);
    trace->expert_ids.resize(at + static_cast<size_t>(n) * k);
    MOE_RETURN_IF_ERROR(backend_->CopyToHost(trace->expert_ids.data() + at, ws.expert_ids,
                                             static_cast<size_t>(n) * k * 4, st));
  }

  const int64_t capacity = static_cast<int64_t>(n) * k;
  PermuteArgs permute;
  permute.x = h;
  permute.expert_ids = ws.expert_ids;
  permute.num_tokens = n;
  permute.top_k = k;
  permute.num_experts = config_.num_experts;
  permute.rows = ws.rows.RowRange(0, capacity);
  permute.expert_offsets = ws.expert_offsets;
  permute.row_to_token = ws.row_to_token;
  permute.slot_to_row = ws.slot_to_row;
  int64_t t0 = times != nullptr ? MonotonicNanos() : 0;
  MOE_RETURN_IF_ERROR(backend_->Permute(permute, st));
  int64_t t1 = times != nullptr ? MonotonicNanos() : 0;
  if (times != nullptr) times->expert_dispatch_ns += t1 - t0;

  const TensorView act = ws.act.RowRange(0, capacity).ColRange(0, config_.moe_intermediate_size);
  MOE_RETURN_IF_ERROR(backend_->GroupedGemmSwiGlu(
      GroupedGemmSwiGluArgs{permute.rows, ws.expert_offsets, p.experts.get(), act}, st));
  MOE_RETURN_IF_ERROR(backend_->GroupedGemm(
      GroupedGemmArgs{act, ws.expert_offsets, p.experts.get(), ws.y_rows.RowRange(0, capacity)},
      st));
  if (times != nullptr) times->grouped_gemm_ns += MonotonicNanos() - t1;

  UnpermuteCombineArgs combine;
  combine.y_rows = ws.y_rows.RowRange(0, capacity);
  combine.slot_to_row = ws.slot_to_row;
  combine.expert_weights = ws.expert_weights;
  combine.num_tokens = n;
  combine.top_k = k;
  if (p.shared_gate_up) {
    const int64_t fs = config_.shared_expert_intermediate_size;
    const TensorView gate_up = ws.gate_up.RowRange(0, n).ColRange(0, 2 * fs);
    const TensorView shared_act = ws.act.RowRange(0, n).ColRange(0, fs);
    MOE_RETURN_IF_ERROR(backend_->Linear(LinearArgs{h, p.shared_gate_up.get(), gate_up}, st));
    MOE_RETURN_IF_ERROR(backend_->SiluMul(SiluMulArgs{gate_up, shared_act}, st));
    MOE_RETURN_IF_ERROR(backend_->Linear(
        LinearArgs{shared_act, p.shared_down.get(), ws.shared_out.RowRange(0, n)}, st));
    MOE_RETURN_IF_ERROR(backend_->Linear(
        LinearArgs{h, p.shared_expert_gate.get(), ws.shared_gate.RowRange(0, n)}, st));
    combine.shared = ws.shared_out.RowRange(0, n);
    combine.shared_gate = ws.shared_gate.RowRange(0, n);
  }
  combine.out = ws.tmp.RowRange(0, n);
  t0 = times != nullptr ? MonotonicNanos() : 0;
  MOE_RETURN_IF_ERROR(backend_->UnpermuteCombine(combine, st));
  if (times != nullptr) times->expert_dispatch_ns += MonotonicNanos() - t0;
  return OkStatus();
}

Status Model::DenseMlpBlock(int layer, int n) {
  Workspace& ws = *ws_;
  LayerParams& p = *layers_[layer];
  const Stream st{};
  const int64_t i_size = config_.intermediate_size;
  const TensorView gate_up = ws.gate_up.RowRange(0, n).ColRange(0, 2 * i_size);
  const TensorView act = ws.act.RowRange(0, n).ColRange(0, i_size);
  MOE_RETURN_IF_ERROR(
      backend_->Linear(LinearArgs{ws.h.RowRange(0, n), p.mlp_gate_up.get(), gate_up}, st));
  MOE_RETURN_IF_ERROR(backend_->SiluMul(SiluMulArgs{gate_up, act}, st));
  return backend_->Linear(LinearArgs{act, p.mlp_down.get(), ws.tmp.RowRange(0, n)}, st);
}

Status Model::Forward(const batching::TokenBatch& batch, const KvCache& cache, float* logits,
                      RoutingTrace* trace, ForwardOpTimes* op_times) {
  // A host clock around an asynchronous launch would time the launch, not the op.
  ForwardOpTimes* times = backend_->HostAddressable() ? op_times : nullptr;
  const int n = batch.num_tokens();
  if (cache.config().block_size != runtime_.block_size ||
      cache.config().num_layers != config_.num_layers ||
      cache.config().dtype != runtime_.activation_dtype) {
    return InvalidArgument("KV cache does not match the model's layers, block size or dtype");
  }
  MOE_RETURN_IF_ERROR(UploadBatch(batch));
  if (trace != nullptr) {
    trace->num_tokens = n;
    trace->top_k = config_.num_experts_per_tok;
    trace->moe_layers.clear();
    trace->expert_ids.clear();
  }
  if (n == 0) return OkStatus();
  Workspace& ws = *ws_;
  const Stream st{};
  const float eps = static_cast<float>(config_.rms_norm_eps);
  MOE_RETURN_IF_ERROR(
      backend_->Embed(EmbedArgs{ws.token_ids, n, embedding_.get(), ws.x.RowRange(0, n)}, st));
  for (int l = 0; l < config_.num_layers; ++l) {
    LayerParams& p = *layers_[l];
    // The residual add of the previous block is fused into this norm.
    const TensorView add = l == 0 ? TensorView{} : ws.tmp.RowRange(0, n);
    MOE_RETURN_IF_ERROR(backend_->RmsNorm(
        RmsNormArgs{ws.x.RowRange(0, n), add, p.input_norm->as<float>(), eps, ws.h.RowRange(0, n)},
        st));
    MOE_RETURN_IF_ERROR(AttentionBlock(l, batch, cache, n));
    MOE_RETURN_IF_ERROR(
        backend_->RmsNorm(RmsNormArgs{ws.x.RowRange(0, n), ws.tmp.RowRange(0, n),
                                      p.post_attn_norm->as<float>(), eps, ws.h.RowRange(0, n)},
                          st));
    if (config_.IsMoeLayer(l)) {
      MOE_RETURN_IF_ERROR(MoeBlock(l, n, trace, times));
    } else {
      MOE_RETURN_IF_ERROR(DenseMlpBlock(l, n));
    }
  }
  // Only rows that need logits go through the last residual add, final norm and lm_head.
  const int num_logits = static_cast<int>(batch.logits_indices.size());
  if (num_logits == 0) return backend_->Synchronize(st);
  const TensorView final_in = ws.final_in.RowRange(0, num_logits);
  const TensorView final_add = ws.final_add.RowRange(0, num_logits);
  const TensorView final_h = ws.final_h.RowRange(0, num_logits);
  const TensorView out = ws.logits.RowRange(0, num_logits);
  MOE_RETURN_IF_ERROR(backend_->GatherRows(
      GatherRowsArgs{ws.x.RowRange(0, n), ws.logits_indices, num_logits, final_in}, st));
  MOE_RETURN_IF_ERROR(backend_->GatherRows(
      GatherRowsArgs{ws.tmp.RowRange(0, n), ws.logits_indices, num_logits, final_add}, st));
  MOE_RETURN_IF_ERROR(backend_->RmsNorm(
      RmsNormArgs{final_in, final_add, final_norm_->as<float>(), eps, final_h}, st));
  MOE_RETURN_IF_ERROR(backend_->Linear(LinearArgs{final_h, lm_head_.get(), out}, st));
  MOE_RETURN_IF_ERROR(backend_->CopyToHost(
      logits, out.data, static_cast<size_t>(num_logits) * config_.vocab_size * 4, st));
  return backend_->Synchronize(st);
}

}  // namespace moe::engine
