// ReferenceBackend: the Backend contract implemented with the naive reference ops
// (reference_ops.h) on host memory. Weights keep their checkpoint dtype in row-major copies.
// It is the oracle the optimized backends are tested against and the path `--backend reference`
// runs; it is correct, batch invariant and slow.
#pragma once

#include <memory>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/thread_pool.h"
#include "engine/backend.h"
#include "engine/cpu/host_backend.h"
#include "engine/cpu/reference_ops.h"

namespace moe::engine::cpu {

// Reference weights: row-major copies in one dtype (the checkpoint's when all parts agree,
// otherwise F32).
class RefLinear final : public PackedLinear {
 public:
  AlignedBuffer storage;
  TensorView matrix;        // [out_features, in_features]
  std::vector<float> bias;  // [out_features] or empty
};

class RefExperts final : public PackedExperts {
 public:
  AlignedBuffer storage;
  std::vector<ref::ExpertMatrices> experts;  // [num_experts]
};

class RefEmbedding final : public PackedEmbedding {
 public:
  AlignedBuffer storage;
  TensorView table;  // [vocab, hidden]
};

class ReferenceBackend : public HostBackend {
 public:
  // `num_threads` = 1 runs everything on the calling thread.
  explicit ReferenceBackend(int num_threads);

  std::string Name() const override { return "reference"; }
  Status Reserve(const BackendLimits& limits) override;

  StatusOr<std::unique_ptr<PackedLinear>> PackLinear(const LinearSource& source) override;
  StatusOr<std::unique_ptr<PackedExperts>> PackExperts(const ExpertsSource& source) override;
  StatusOr<std::unique_ptr<PackedEmbedding>> PackEmbedding(
      const model::TensorEntry& table) override;
  StatusOr<std::unique_ptr<Buffer>> UploadF32(const model::TensorEntry& vector) override;

  Status Embed(const EmbedArgs& args, Stream stream) override;
  Status RmsNorm(const RmsNormArgs& args, Stream stream) override;
  Status Linear(const LinearArgs& args, Stream stream) override;
  Status QkNormRope(const QkNormRopeArgs& args, Stream stream) override;
  Status KvWrite(const KvWriteArgs& args, Stream stream) override;
  Status Attention(const AttentionArgs& args, Stream stream) override;
  Status RouterTopK(const RouterTopKArgs& args, Stream stream) override;
  Status Permute(const PermuteArgs& args, Stream stream) override;
  Status GroupedGemmSwiGlu(const GroupedGemmSwiGluArgs& args, Stream stream) override;
  Status GroupedGemm(const GroupedGemmArgs& args, Stream stream) override;
  Status UnpermuteCombine(const UnpermuteCombineArgs& args, Stream stream) override;
  Status SiluMul(const SiluMulArgs& args, Stream stream) override;
  Status GatherRows(const GatherRowsArgs& args, Stream stream) override;

 protected:
  ThreadPool* pool() { return pool_.get(); }

 private:
  std::unique_ptr<ThreadPool> pool_;
  BackendLimits limits_;
  std::vector<float> attention_scratch_;  // [threads, max_context]
};

// Copies `tensors` (each [rows_i, cols], any float dtype) one after another into `dst` as
// `dtype`, row-major.
void CopyConvert(const std::vector<const model::TensorEntry*>& tensors, DType dtype, void* dst);

}  // namespace moe::engine::cpu
