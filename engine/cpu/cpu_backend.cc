#include "engine/cpu/cpu_backend.h"

#include <algorithm>
#include <cstring>

#include "core/clock.h"
#include "engine/cpu/reference_backend.h"

namespace moe::engine::cpu {
namespace {

// Rows of one grouped/dense GEMM work item: a block's weights are reused from cache by up to
// this many rows before the next item.
constexpr int64_t kGemmRowChunk = 64;
// Row-wise ops go parallel from this many rows (below it, waking threads costs more).
constexpr int64_t kParallelRows = 32;

bool IsActivationDType(DType d) { return d == DType::kF32 || d == DType::kBF16; }

Status CheckActivation(const TensorView& v, const char* op, const char* name) {
  if (!IsActivationDType(v.dtype)) {
    return InvalidArgument(op, ": ", name, " must be F32 or BF16, is ", DTypeName(v.dtype));
  }
  return OkStatus();
}

}  // namespace

StatusOr<std::unique_ptr<CpuBackend>> CpuBackend::Create(const CpuBackendOptions& options) {
  if (options.num_threads < 0) return InvalidArgument("num_threads must be >= 0");
  MOE_ASSIGN_OR_RETURN(const CpuIsa isa, ResolveCpuIsa(options.isa));
  const int threads = options.num_threads > 0 ? options.num_threads : PhysicalCoreCount();
  return std::unique_ptr<CpuBackend>(new CpuBackend(isa, threads));
}

StatusOr<std::unique_ptr<Backend>> CreateCpuBackend(const CpuBackendOptions& options) {
  MOE_ASSIGN_OR_RETURN(auto backend, CpuBackend::Create(options));
  return std::unique_ptr<Backend>(std::move(backend));
}

CpuBackend::CpuBackend(CpuIsa isa, int num_threads)
    : isa_(isa),
      pool_(num_threads),
      gemm_(GemmKernelFor(isa)),
      attention_(AttentionKernelFor(isa)),
      silu_mul_(SiluMulKernelFor(isa)) {}

CpuBackend::~CpuBackend() = default;

CpuBackend::OpTimer::OpTimer(CpuBackend* backend, OpId op)
    : backend_(backend), op_(op), start_(backend->op_stats_on_ ? MonotonicNanos() : 0) {}

CpuBackend::OpTimer::~OpTimer() {
  if (!backend_->op_stats_on_) return;
  ++backend_->op_calls_[op_];
  backend_->op_nanos_[op_] += MonotonicNanos() - start_;
}

std::vector<CpuBackend::OpStat> CpuBackend::OpStats() const {
  static const char* const kNames[kNumOps] = {
      "Embed",       "RmsNorm",          "Linear",
      "QkNormRope",  "KvWrite",          "Attention",
      "RouterTopK",  "Permute",          "GroupedGemmSwiGlu",
      "GroupedGemm", "UnpermuteCombine", "SiluMul",
      "GatherRows"};
  std::vector<OpStat> stats;
  for (int i = 0; i < kNumOps; ++i) {
    if (op_calls_[i] > 0) stats.push_back({kNames[i], op_calls_[i], op_nanos_[i] * 1e-9});
  }
  return stats;
}

void CpuBackend::ResetOpStats() {
  for (int i = 0; i < kNumOps; ++i) op_calls_[i] = op_nanos_[i] = 0;
}

template <typename Fn>
void CpuBackend::ForRows(int64_t n, int64_t rows_per_chunk, Fn&& fn) {
  if (n <= 0) return;
  if (n < kParallelRows || pool_.num_threads() == 1) {
    fn(int64_t{0}, n, 0);
    return;
  }
  const int64_t chunks = (n + rows_per_chunk - 1) / rows_per_chunk;
  pool_.Run(chunks, [&](int64_t c, int thread) {
    fn(c * rows_per_chunk, std::min(n, (c + 1) * rows_per_chunk), thread);
  });
}

// ---------------------------------------------------------------------------------------------
// Memory.

void CpuBackend::EnsureScratch(int64_t floats) {
  floats = (floats + 15) / 16 * 16;
  if (floats <= scratch_per_thread_) return;
  scratch_per_thread_ = floats;
  scratch_ = AlignedBuffer(static_cast<size_t>(floats) * pool_.num_threads() * sizeof(float));
  scratch_.Zero();
}

Status CpuBackend::Reserve(const BackendLimits& limits) {
  limits_ = limits;
  const int64_t h = std::max(limits.hidden, 1);
  const int64_t q_cols = static_cast<int64_t>(limits.num_heads) * limits.head_dim;
  const int64_t k_cols = static_cast<int64_t>(limits.num_kv_heads) * limits.head_dim;
  const int group =
      limits.num_kv_heads > 0 ? std::max(1, limits.num_heads / limits.num_kv_heads) : 1;
  int64_t floats = ops::kRmsNormScratchRows * h;                              // norms, combine
  floats = std::max(floats, std::max(q_cols, k_cols) + limits.head_dim + 2);  // q/k norm + rope
  floats = std::max<int64_t>(floats, 3 * std::max(limits.num_experts, 1));    // router
  floats = std::max(floats, AttentionScratchFloats(std::max(limits.max_context, 1), group,
                                                   std::max(limits.head_dim, 1)));
  EnsureScratch(floats);

  // Grouped GEMM items: blocks x (one chunk per expert + extra chunks of large experts).
  const int64_t f = std::max<int64_t>(limits.max_intermediate, 1);
  const int64_t blocks =
      std::max((f + kHalfBlockCols - 1) / kHalfBlockCols, (h + kBlockCols - 1) / kBlockCols);
  const int64_t rows = static_cast<int64_t>(limits.max_tokens) * std::max(limits.top_k, 1);
  gemm_items_.reserve(blocks * (limits.num_experts + rows / kGemmRowChunk + 1));
  attention_tiles_.reserve(static_cast<size_t>(std::max(limits.num_kv_heads, 1)) *
                           (limits.max_seqs + limits.max_tokens / kAttentionQueryTile + 1));
  permute_cursor_.assign(std::max(limits.num_experts, 1), 0);
  rope_.Reserve(limits.max_context, limits.head_dim);
  reserved_ = true;
  return OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Weights.

StatusOr<std::unique_ptr<PackedLinear>> CpuBackend::PackLinear(const LinearSource& source) {
  MOE_ASSIGN_OR_RETURN(const LinearShape shape, CheckLinearSource(source));
  const int64_t rows = shape.rows;
  const int64_t cols = shape.cols;
  auto packed = std::make_unique<CpuLinear>();
  const DType dtype = PackedDTypeFor(source.row_blocks);
  const PackSource pack = PackSource::Rows(source.row_blocks);
  const size_t bytes = PackedBytes(dtype, rows, cols);
  packed->w = PackedView(pack, dtype, arena_.Allocate(bytes));
  pool_.Run(packed->w.num_blocks, [&](int64_t b, int) { PackBlocks(pack, packed->w, b, b + 1); });
  if (!source.biases.empty()) {
    packed->bias.resize(rows);
    int64_t at = 0;
    for (const model::TensorEntry* b : source.biases) {
      CopyConvert({b}, DType::kF32, packed->bias.data() + at);
      at += b->NumElements();
    }
  }
  packed->out_features = rows;
  packed->in_features = cols;
  packed->has_bias = !packed->bias.empty();
  packed->packed_bytes = bytes + packed->bias.size() * sizeof(float);
  return std::unique_ptr<PackedLinear>(std::move(packed));
}

StatusOr<std::unique_ptr<PackedExperts>> CpuBackend::PackExperts(const ExpertsSource& source) {
  MOE_ASSIGN_OR_RETURN(const ExpertsShape shape, CheckExpertsSource(source));
  const size_t num_experts = static_cast<size_t>(shape.num_experts);
  const int64_t f = shape.intermediate;
  const int64_t h = shape.hidden;
  std::vector<const model::TensorEntry*> all;
  for (size_t e = 0; e < num_experts; ++e) {
    all.push_back(source.gate[e]);
    all.push_back(source.up[e]);
    all.push_back(source.down[e]);
  }
  const DType dtype = PackedDTypeFor(all);
  const int64_t gate_up_rows = 2 * ((f + kHalfBlockCols - 1) / kHalfBlockCols) * kHalfBlockCols;
  const size_t gate_up_bytes = PackedBytes(dtype, gate_up_rows, h);
  const size_t down_bytes = PackedBytes(dtype, h, f);
  const size_t per_expert = gate_up_bytes + down_bytes;
  auto packed = std::make_unique<CpuExperts>();
  char* base = static_cast<char*>(arena_.Allocate(per_expert * num_experts));
  packed->gate_up.resize(num_experts);
  packed->down.resize(num_experts);
  pool_.Run(static_cast<int64_t>(num_experts) * 2, [&](int64_t item, int) {
    const size_t e = static_cast<size_t>(item / 2);
    char* at = base + e * per_expert;
    if (item % 2 == 0) {
      const PackSource src = PackSource::GateUp(*source.gate[e], *source.up[e]);
      packed->gate_up[e] = PackedView(src, dtype, at);
      PackBlocks(src, packed->gate_up[e], 0, packed->gate_up[e].num_blocks);
    } else {
      const PackSource src = PackSource::Rows({source.down[e]});
      packed->down[e] = PackedView(src, dtype, at + gate_up_bytes);
      PackBlocks(src, packed->down[e], 0, packed->down[e].num_blocks);
    }
  });
  packed->num_experts = static_cast<int>(num_experts);
  packed->hidden = h;
  packed->intermediate = f;
  packed->packed_bytes = per_expert * num_experts;
  return std::unique_ptr<PackedExperts>(std::move(packed));
}

StatusOr<std::unique_ptr<PackedEmbedding>> CpuBackend::PackEmbedding(
    const model::TensorEntry& table) {
  if (table.shape.size() != 2) {
    return InvalidArgument(table.file, ": embedding '", table.name, "' must be 2-D, has shape ",
                           table.ShapeString());
  }
  auto packed = std::make_unique<CpuEmbedding>();
  packed->storage = AlignedBuffer(std::max<size_t>(table.num_bytes, 64));
  std::memcpy(packed->storage.data(), table.data, table.num_bytes);
  packed->table =
      TensorView::Contiguous(packed->storage.data(), table.dtype, table.shape[0], table.shape[1]);
  packed->vocab = table.shape[0];
  packed->hidden = table.shape[1];
  packed->packed_bytes = table.num_bytes;
  return std::unique_ptr<PackedEmbedding>(std::move(packed));
}

StatusOr<std::unique_ptr<Buffer>> CpuBackend::UploadF32(const model::TensorEntry& vector) {
  auto buffer = std::make_unique<HostBuffer>(static_cast<size_t>(vector.NumElements()) * 4);
  CopyConvert({&vector}, DType::kF32, buffer->data());
  return std::unique_ptr<Buffer>(std::move(buffer));
}

// ---------------------------------------------------------------------------------------------
// Ops.

Status CpuBackend::Embed(const EmbedArgs& a, Stream) {
  const OpTimer timer(this, kEmbed);
  MOE_RETURN_IF_ERROR(CheckActivation(a.out, "Embed", "out"));
  const auto* table = static_cast<const CpuEmbedding*>(a.table);
  if (table == nullptr || table->table.cols != a.out.cols) {
    return InvalidArgument("Embed: table width does not match out");
  }
  for (int t = 0; t < a.num_tokens; ++t) {
    if (a.token_ids[t] < 0 || a.token_ids[t] >= table->table.rows) {
      return InvalidArgument("Embed: token id ", a.token_ids[t], " at row ", t, " outside [0, ",
                             table->table.rows, ")");
    }
  }
  ForRows(a.num_tokens, 64,
          [&](int64_t b, int64_t e, int) { ops::EmbedRows(a, table->table, b, e); });
  return OkStatus();
}

Status CpuBackend::RmsNorm(const RmsNormArgs& a, Stream) {
  const OpTimer timer(this, kRmsNorm);
  if (!reserved_) return FailedPrecondition("RmsNorm before Reserve()");
  MOE_RETURN_IF_ERROR(CheckActivation(a.x, "RmsNorm", "x"));
  MOE_RETURN_IF_ERROR(CheckActivation(a.out, "RmsNorm", "out"));
  if (a.x.cols != a.out.cols || a.x.rows != a.out.rows ||
      ops::kRmsNormScratchRows * a.x.cols > scratch_per_thread_) {
    return InvalidArgument("RmsNorm: x [", a.x.rows, ", ", a.x.cols, "] vs out [", a.out.rows, ", ",
                           a.out.cols, "] (or wider than Reserve() allowed)");
  }
  ForRows(a.x.rows, 16,
          [&](int64_t b, int64_t e, int thread) { ops::RmsNormRows(a, b, e, Scratch(thread)); });
  return OkStatus();
}

Status CpuBackend::Linear(const LinearArgs& a, Stream) {
  const OpTimer timer(this, kLinear);
  MOE_RETURN_IF_ERROR(CheckActivation(a.x, "Linear", "x"));
  MOE_RETURN_IF_ERROR(CheckActivation(a.out, "Linear", "out"));
  const auto* w = static_cast<const CpuLinear*>(a.weight);
  if (w == nullptr || a.x.cols != w->in_features || a.out.cols != w->out_features ||
      a.x.rows != a.out.rows) {
    return InvalidArgument("Linear: x [", a.x.rows, ", ", a.x.cols, "], out [", a.out.rows, ", ",
                           a.out.cols, "] do not match the weight");
  }
  const int64_t m = a.x.rows;
  if (m == 0) return OkStatus();
  const int64_t chunks = (m + kGemmRowChunk - 1) / kGemmRowChunk;
  const int64_t blocks = w->w.num_blocks;
  // Block-major items: consecutive items share one block of weights.
  pool_.Run(blocks * chunks, [&](int64_t item, int) {
    const int64_t b = item / chunks;
    const int64_t c = item % chunks;
    const int64_t r0 = c * kGemmRowChunk;
    const int64_t n = std::min(kGemmRowChunk, m - r0);
    GemmTask task;
    task.a = a.x.RowRange(r0, n);
    task.w = &w->w;
    task.block_begin = b;
    task.block_end = b + 1;
    task.bias = w->bias.empty() ? nullptr : w->bias.data();
    task.out = a.out.RowRange(r0, n);
    task.cold = c == 0;
    gemm_(task);
  });
  return OkStatus();
}

Status CpuBackend::QkNormRope(const QkNormRopeArgs& a, Stream) {
  const OpTimer timer(this, kQkNormRope);
  if (!reserved_) return FailedPrecondition("QkNormRope before Reserve()");
  MOE_RETURN_IF_ERROR(CheckActivation(a.q, "QkNormRope", "q"));
  MOE_RETURN_IF_ERROR(CheckActivation(a.k, "QkNormRope", "k"));
  if (std::max(a.q.cols, a.k.cols) + a.head_dim > scratch_per_thread_) {
    return InvalidArgument("QkNormRope: rows wider than Reserve() allowed");
  }
  rope_.Prepare(a.head_dim, a.rope_theta);
  ForRows(a.num_tokens, 16, [&](int64_t b, int64_t e, int thread) {
    ops::QkNormRopeRows(a, rope_, b, e, Scratch(thread));
  });
  return OkStatus();
}

Status CpuBackend::KvWrite(const KvWriteArgs& a, Stream) {
  const OpTimer timer(this, kKvWrite);
  MOE_RETURN_IF_ERROR(CheckActivation(a.cache.k, "KvWrite", "cache"));
  for (int t = 0; t < a.num_tokens; ++t) {
    if (a.slot_mapping[t] >= a.cache.k.rows) {
      return InvalidArgument("KvWrite: slot ", a.slot_mapping[t], " outside the cache");
    }
  }
  ForRows(a.num_tokens, 64, [&](int64_t b, int64_t e, int) { ops::KvWriteRows(a, b, e); });
  return OkStatus();
}

Status CpuBackend::Attention(const AttentionArgs& a, Stream) {
  const OpTimer timer(this, kAttention);
  if (!reserved_) return FailedPrecondition("Attention before Reserve()");
  MOE_RETURN_IF_ERROR(CheckActivation(a.q, "Attention", "q"));
  MOE_RETURN_IF_ERROR(CheckActivation(a.out, "Attention", "out"));
  MOE_RETURN_IF_ERROR(CheckActivation(a.cache.k, "Attention", "cache"));
  if (a.num_kv_heads <= 0 || a.num_heads % a.num_kv_heads != 0) {
    return InvalidArgument("Attention: num_heads must be a multiple of num_kv_heads");
  }
  const int group = a.num_heads / a.num_kv_heads;
  for (int t = 0; t < a.num_tokens; ++t) {
    if (a.positions[t] < 0 || a.positions[t] >= limits_.max_context) {
      return InvalidArgument("Attention: position ", a.positions[t], " outside [0, ",
                             limits_.max_context, ")");
    }
  }
  if (AttentionScratchFloats(limits_.max_context, group, a.head_dim) > scratch_per_thread_) {
    return InvalidArgument("Attention: heads per kv head or head_dim above Reserve()'s limits");
  }
  // Tiles: per sequence, per kv head, query rows in tiles of kAttentionQueryTile, latest (the
  // longest) first so that the dynamic hand-out ends on short tiles.
  attention_tiles_.clear();
  for (int s = 0; s < a.num_seqs; ++s) {
    const int begin = a.query_start[s];
    const int end = a.query_start[s + 1];
    for (int t1 = end; t1 > begin; t1 -= kAttentionQueryTile) {
      const int t0 = std::max(begin, t1 - kAttentionQueryTile);
      for (int g = 0; g < a.num_kv_heads; ++g) attention_tiles_.push_back({s, g, t0, t1});
    }
  }
  const AttentionScratch base{nullptr, AttentionScoreStride(limits_.max_context)};
  pool_.Run(static_cast<int64_t>(attention_tiles_.size()), [&](int64_t i, int thread) {
    AttentionScratch scratch = base;
    scratch.data = Scratch(thread);
    attention_(a, attention_tiles_[i], scratch);
  });
  return OkStatus();
}

Status CpuBackend::RouterTopK(const RouterTopKArgs& a, Stream) {
  const OpTimer timer(this, kRouterTopK);
  if (!reserved_) return FailedPrecondition("RouterTopK before Reserve()");
  if (a.top_k <= 0 || a.top_k > a.num_experts || a.top_k > 256) {
    return InvalidArgument("RouterTopK: top_k ", a.top_k, " with ", a.num_experts, " experts");
  }
  if (3 * a.num_experts > scratch_per_thread_) {
    return InvalidArgument("RouterTopK: more experts than Reserve() allowed");
  }
  ForRows(a.num_tokens, 16,
          [&](int64_t b, int64_t e, int thread) { ops::RouterTopKRows(a, b, e, Scratch(thread)); });
  return OkStatus();
}

Status CpuBackend::Permute(const PermuteArgs& a, Stream) {
  const OpTimer timer(this, kPermute);
  if (a.rows.dtype != a.x.dtype) return InvalidArgument("Permute copies rows: dtypes must match");
  if (static_cast<int>(permute_cursor_.size()) < a.num_experts) {
    return InvalidArgument("Permute: more experts than Reserve() allowed");
  }
  ops::PermutePlan(a, permute_cursor_.data());
  ForRows(a.num_tokens, 16, [&](int64_t b, int64_t e, int) { ops::PermuteCopyRows(a, b, e); });
  return OkStatus();
}

Status CpuBackend::RunGrouped(const TensorView& rows, const int32_t* expert_offsets,
                              const std::vector<PackedMatrix>& matrices, GemmEpilogue epilogue,
                              const TensorView& out) {
  MOE_RETURN_IF_ERROR(CheckActivation(rows, "GroupedGemm", "rows"));
  MOE_RETURN_IF_ERROR(CheckActivation(out, "GroupedGemm", "out"));
  const int num_experts = static_cast<int>(matrices.size());
  const int64_t total = expert_offsets[num_experts];
  if (total > rows.rows || total > out.rows) {
    return InvalidArgument("GroupedGemm: ", total, " rows exceed the row capacity");
  }
  gemm_items_.clear();
  for (int e = 0; e < num_experts; ++e) {
    const int32_t begin = expert_offsets[e];
    const int32_t end = expert_offsets[e + 1];
    if (end <= begin) continue;
    const int32_t blocks = static_cast<int32_t>(matrices[e].num_blocks);
    for (int32_t b = 0; b < blocks; ++b) {
      for (int32_t r = begin; r < end; r += kGemmRowChunk) {
        gemm_items_.push_back(
            {e, b, r, static_cast<int32_t>(std::min<int64_t>(end, r + kGemmRowChunk))});
      }
    }
  }
  pool_.Run(static_cast<int64_t>(gemm_items_.size()), [&](int64_t i, int) {
    const GemmItem& item = gemm_items_[i];
    GemmTask task;
    task.a = rows.RowRange(item.row_begin, item.row_end - item.row_begin);
    task.w = &matrices[item.expert];
    task.block_begin = item.block;
    task.block_end = item.block + 1;
    task.epilogue = epilogue;
    task.out = out.RowRange(item.row_begin, item.row_end - item.row_begin);
    task.cold = item.row_begin == expert_offsets[item.expert];
    gemm_(task);
  });
  return OkStatus();
}

Status CpuBackend::GroupedGemmSwiGlu(const GroupedGemmSwiGluArgs& a, Stream) {
  const OpTimer timer(this, kGroupedGemmSwiGlu);
  const auto* experts = static_cast<const CpuExperts*>(a.experts);
  if (experts == nullptr || a.rows.cols != experts->hidden || a.out.cols != experts->intermediate) {
    return InvalidArgument("GroupedGemmSwiGlu: rows [", a.rows.rows, ", ", a.rows.cols, "] / out [",
                           a.out.rows, ", ", a.out.cols, "] do not match the experts");
  }
  return RunGrouped(a.rows, a.expert_offsets, experts->gate_up, GemmEpilogue::kSwiGlu, a.out);
}

Status CpuBackend::GroupedGemm(const GroupedGemmArgs& a, Stream) {
  const OpTimer timer(this, kGroupedGemm);
  const auto* experts = static_cast<const CpuExperts*>(a.experts);
  if (experts == nullptr || a.h.cols != experts->intermediate || a.out.cols != experts->hidden) {
    return InvalidArgument("GroupedGemm: h [", a.h.rows, ", ", a.h.cols, "] / out [", a.out.rows,
                           ", ", a.out.cols, "] do not match the experts");
  }
  return RunGrouped(a.h, a.expert_offsets, experts->down, GemmEpilogue::kStore, a.out);
}

Status CpuBackend::UnpermuteCombine(const UnpermuteCombineArgs& a, Stream) {
  const OpTimer timer(this, kUnpermuteCombine);
  if (!reserved_) return FailedPrecondition("UnpermuteCombine before Reserve()");
  MOE_RETURN_IF_ERROR(CheckActivation(a.out, "UnpermuteCombine", "out"));
  if (2 * a.out.cols > scratch_per_thread_) {
    return InvalidArgument("UnpermuteCombine: rows wider than Reserve() allowed");
  }
  ForRows(a.num_tokens, 16,
          [&](int64_t b, int64_t e, int thread) { ops::CombineRows(a, b, e, Scratch(thread)); });
  return OkStatus();
}

Status CpuBackend::SiluMul(const SiluMulArgs& a, Stream) {
  const OpTimer timer(this, kSiluMul);
  MOE_RETURN_IF_ERROR(CheckActivation(a.x, "SiluMul", "x"));
  MOE_RETURN_IF_ERROR(CheckActivation(a.out, "SiluMul", "out"));
  if (a.x.cols != 2 * a.out.cols || a.x.rows != a.out.rows) {
    return InvalidArgument("SiluMul: x must be [T, 2F] for out [T, F]");
  }
  ForRows(a.x.rows, 16, [&](int64_t b, int64_t e, int) { silu_mul_(a.x, a.out, b, e); });
  return OkStatus();
}

Status CpuBackend::GatherRows(const GatherRowsArgs& a, Stream) {
  const OpTimer timer(this, kGatherRows);
  for (int i = 0; i < a.num_indices; ++i) {
    if (a.indices[i] < 0 || a.indices[i] >= a.x.rows) {
      return InvalidArgument("GatherRows: index ", a.indices[i], " outside [0, ", a.x.rows, ")");
    }
  }
  ForRows(a.num_indices, 64, [&](int64_t b, int64_t e, int) { ops::GatherRows(a, b, e); });
  return OkStatus();
}

}  // namespace moe::engine::cpu
