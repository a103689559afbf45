#include "engine/cpu/reference_backend.h"

#include <cstring>

#include "engine/cpu/element.h"

namespace moe::engine::cpu {
namespace {

// The one dtype the parts share, else F32.
DType CommonDType(const std::vector<const model::TensorEntry*>& tensors) {
  DType dtype = tensors.front()->dtype;
  for (const model::TensorEntry* t : tensors) {
    if (t->dtype != dtype) return DType::kF32;
  }
  return dtype;
}

}  // namespace

void CopyConvert(const std::vector<const model::TensorEntry*>& tensors, DType dtype, void* dst) {
  char* out = static_cast<char*>(dst);
  const size_t out_size = DTypeSize(dtype);
  for (const model::TensorEntry* t : tensors) {
    const int64_t n = t->NumElements();
    if (t->dtype == dtype) {
      std::memcpy(out, t->data, t->num_bytes);
    } else {
      DispatchFloat(t->dtype, [&](auto in_tag) {
        using TI = decltype(in_tag);
        const TI* in = static_cast<const TI*>(t->data);
        DispatchFloat(dtype, [&](auto out_tag) {
          using TO = decltype(out_tag);
          TO* o = reinterpret_cast<TO*>(out);
          for (int64_t i = 0; i < n; ++i) Store(o + i, Load(in + i));
        });
      });
    }
    out += static_cast<size_t>(n) * out_size;
  }
}

ReferenceBackend::ReferenceBackend(int num_threads)
    : pool_(std::make_unique<ThreadPool>(num_threads)) {}

Status ReferenceBackend::Reserve(const BackendLimits& limits) {
  limits_ = limits;
  attention_scratch_.assign(static_cast<size_t>(pool_->num_threads()) * (limits.max_context + 1),
                            0.f);
  return OkStatus();
}

StatusOr<std::unique_ptr<PackedLinear>> ReferenceBackend::PackLinear(const LinearSource& source) {
  MOE_ASSIGN_OR_RETURN(const LinearShape shape, CheckLinearSource(source));
  const int64_t rows = shape.rows;
  const int64_t cols = shape.cols;
  auto packed = std::make_unique<RefLinear>();
  const DType dtype = CommonDType(source.row_blocks);
  packed->storage = AlignedBuffer(static_cast<size_t>(rows * cols) * DTypeSize(dtype));
  CopyConvert(source.row_blocks, dtype, packed->storage.data());
  packed->matrix = TensorView::Contiguous(packed->storage.data(), dtype, rows, cols);
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
  packed->packed_bytes = packed->storage.size() + packed->bias.size() * sizeof(float);
  return std::unique_ptr<PackedLinear>(std::move(packed));
}

StatusOr<std::unique_ptr<PackedExperts>> ReferenceBackend::PackExperts(
    const ExpertsSource& source) {
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
  const DType dtype = CommonDType(all);
  auto packed = std::make_unique<RefExperts>();
  const size_t per_expert = static_cast<size_t>(3 * f * h);
  packed->storage = AlignedBuffer(per_expert * num_experts * DTypeSize(dtype));
  char* base = packed->storage.as<char>();
  for (size_t e = 0; e < num_experts; ++e) {
    char* at = base + e * per_expert * DTypeSize(dtype);
    CopyConvert({source.gate[e], source.up[e]}, dtype, at);
    char* down_at = at + static_cast<size_t>(2 * f * h) * DTypeSize(dtype);
    CopyConvert({source.down[e]}, dtype, down_at);
    packed->experts.push_back(ref::ExpertMatrices{TensorView::Contiguous(at, dtype, 2 * f, h),
                                                  TensorView::Contiguous(down_at, dtype, h, f)});
  }
  packed->num_experts = static_cast<int>(num_experts);
  packed->hidden = h;
  packed->intermediate = f;
  packed->packed_bytes = packed->storage.size();
  return std::unique_ptr<PackedExperts>(std::move(packed));
}

StatusOr<std::unique_ptr<PackedEmbedding>> ReferenceBackend::PackEmbedding(
    const model::TensorEntry& table) {
  if (table.shape.size() != 2) {
    return InvalidArgument(table.file, ": embedding '", table.name, "' must be 2-D, has shape ",
                           table.ShapeString());
  }
  auto packed = std::make_unique<RefEmbedding>();
  packed->storage = AlignedBuffer(table.num_bytes);
  CopyConvert({&table}, table.dtype, packed->storage.data());
  packed->table =
      TensorView::Contiguous(packed->storage.data(), table.dtype, table.shape[0], table.shape[1]);
  packed->vocab = table.shape[0];
  packed->hidden = table.shape[1];
  packed->packed_bytes = packed->storage.size();
  return std::unique_ptr<PackedEmbedding>(std::move(packed));
}

StatusOr<std::unique_ptr<Buffer>> ReferenceBackend::UploadF32(const model::TensorEntry& vector) {
  auto buffer = std::make_unique<HostBuffer>(static_cast<size_t>(vector.NumElements()) * 4);
  CopyConvert({&vector}, DType::kF32, buffer->data());
  return std::unique_ptr<Buffer>(std::move(buffer));
}

Status ReferenceBackend::Embed(const EmbedArgs& a, Stream) {
  ref::Embed(a.token_ids, a.num_tokens, static_cast<const RefEmbedding*>(a.table)->table, a.out,
             pool());
  return OkStatus();
}

Status ReferenceBackend::RmsNorm(const RmsNormArgs& a, Stream) {
  ref::RmsNorm(a.x, a.add, a.weight, a.eps, a.out, pool());
  return OkStatus();
}

Status ReferenceBackend::Linear(const LinearArgs& a, Stream) {
  const auto* w = static_cast<const RefLinear*>(a.weight);
  ref::Linear(a.x, w->matrix, w->bias.empty() ? nullptr : w->bias.data(), a.out, pool());
  return OkStatus();
}

Status ReferenceBackend::QkNormRope(const QkNormRopeArgs& a, Stream) {
  ref::QkNormRope(a, pool());
  return OkStatus();
}

Status ReferenceBackend::KvWrite(const KvWriteArgs& a, Stream) {
  ref::KvWrite(a);
  return OkStatus();
}

Status ReferenceBackend::Attention(const AttentionArgs& a, Stream) {
  if (attention_scratch_.empty()) return FailedPrecondition("Attention before Reserve()");
  ref::Attention(a, attention_scratch_.data(), limits_.max_context + 1, pool());
  return OkStatus();
}

Status ReferenceBackend::RouterTopK(const RouterTopKArgs& a, Stream) {
  ref::RouterTopK(a);
  return OkStatus();
}

Status ReferenceBackend::Permute(const PermuteArgs& a, Stream) {
  ref::Permute(a);
  return OkStatus();
}

Status ReferenceBackend::GroupedGemmSwiGlu(const GroupedGemmSwiGluArgs& a, Stream) {
  ref::GroupedGemmSwiGlu(a.rows, a.expert_offsets,
                         static_cast<const RefExperts*>(a.experts)->experts, a.out, pool());
  return OkStatus();
}

Status ReferenceBackend::GroupedGemm(const GroupedGemmArgs& a, Stream) {
  ref::GroupedGemm(a.h, a.expert_offsets, static_cast<const RefExperts*>(a.experts)->experts, a.out,
                   pool());
  return OkStatus();
}

Status ReferenceBackend::UnpermuteCombine(const UnpermuteCombineArgs& a, Stream) {
  ref::UnpermuteCombine(a, pool());
  return OkStatus();
}

Status ReferenceBackend::SiluMul(const SiluMulArgs& a, Stream) {
  ref::SiluMul(a.x, a.out, pool());
  return OkStatus();
}

Status ReferenceBackend::GatherRows(const GatherRowsArgs& a, Stream) {
  ref::GatherRows(a.x, a.indices, a.num_indices, a.out);
  return OkStatus();
}

}  // namespace moe::engine::cpu
