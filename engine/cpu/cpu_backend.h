// CpuBackend: the optimized CPU implementation of the Backend contract (DESIGN.md §3), the
// default wherever there is no GPU.
//
// - Weights are packed once at load (packed_matrix.h): BF16 checkpoints stay BF16 as VNNI-2 pairs
//   blocked by 64 output columns; F16/F32 checkpoints are widened exactly to F32 in the same
//   blocking. Expert gate and up are fused per block.
// - GEMMs (gemm.h) use one register-tiled kernel for every row count; grouped expert GEMMs hand
//   out (expert, column block, row chunk) items, so in a decode step each active expert's
//   weights are streamed from memory once and shared by all its tokens.
// - Attention (attention.h) runs (sequence, kv head, query tile) items over the paged cache.
// - Row-wise ops (cpu_ops.h) match the reference bit for bit.
// - Work items go to a persistent WorkPool (work_pool.h) of `num_threads` threads (the caller
//   included); no op allocates (scratch is sized by Reserve()).
//
// Batch invariance (DESIGN.md §4): every output element is computed by one work item with a
// fixed instruction sequence that depends only on its own row, so results are bit-identical
// for any batch composition, row order or thread count on a given ISA path.
//
// Threading: one thread (the engine's compute thread) calls the ops.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/aligned_buffer.h"
#include "engine/backend.h"
#include "engine/cpu/attention.h"
#include "engine/cpu/cpu_features.h"
#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/gemm.h"
#include "engine/cpu/host_backend.h"
#include "engine/cpu/packed_matrix.h"
#include "engine/cpu/weight_arena.h"
#include "engine/cpu/work_pool.h"

namespace moe::engine::cpu {

struct CpuBackendOptions {
  int num_threads = 0;         // compute threads including the caller; 0 = physical cores
  CpuIsa isa = CpuIsa::kAuto;  // kernel path; forcing one this CPU lacks is an error
};

class CpuLinear final : public PackedLinear {
 public:
  PackedMatrix w;           // in the backend's WeightArena
  std::vector<float> bias;  // [out_features] or empty
};

class CpuExperts final : public PackedExperts {
 public:
  std::vector<PackedMatrix> gate_up;  // [num_experts], 2F' x H (gate|up interleaved per block)
  std::vector<PackedMatrix> down;     // [num_experts], H x F
};

class CpuEmbedding final : public PackedEmbedding {
 public:
  AlignedBuffer storage;
  TensorView table;  // [vocab, hidden] in the checkpoint dtype
};

class CpuBackend final : public HostBackend {
 public:
  static StatusOr<std::unique_ptr<CpuBackend>> Create(const CpuBackendOptions& options);
  ~CpuBackend() override;

  std::string Name() const override { return "cpu"; }
  CpuIsa isa() const { return isa_; }
  int num_threads() const { return pool_.num_threads(); }

  // Per-op wall time, for benchmarks' breakdowns (off by default; two clock reads per op).
  struct OpStat {
    const char* op = "";
    int64_t calls = 0;
    double seconds = 0;
  };
  void EnableOpStats(bool on) { op_stats_on_ = on; }
  std::vector<OpStat> OpStats() const;
  void ResetOpStats();

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

 private:
  // One unit of a grouped GEMM: rows [row_begin, row_end) of the permuted rows against column
  // block `block` of expert `expert`'s matrix.
  struct GemmItem {
    int32_t expert;
    int32_t block;
    int32_t row_begin;
    int32_t row_end;
  };

  CpuBackend(CpuIsa isa, int num_threads);
  // Grows per-thread float scratch to at least `floats` per thread (Reserve() only).
  void EnsureScratch(int64_t floats);
  float* Scratch(int thread) { return scratch_.as<float>() + thread * scratch_per_thread_; }
  Status RunGrouped(const TensorView& rows, const int32_t* expert_offsets,
                    const std::vector<PackedMatrix>& matrices, GemmEpilogue epilogue,
                    const TensorView& out);
  // Runs fn(begin, end, thread) over [0, n) rows in chunks, in parallel when n is large.
  template <typename Fn>
  void ForRows(int64_t n, int64_t rows_per_chunk, Fn&& fn);

  enum OpId {
    kEmbed,
    kRmsNorm,
    kLinear,
    kQkNormRope,
    kKvWrite,
    kAttention,
    kRouterTopK,
    kPermute,
    kGroupedGemmSwiGlu,
    kGroupedGemm,
    kUnpermuteCombine,
    kSiluMul,
    kGatherRows,
    kNumOps
  };
  // Times the enclosing op when stats are on.
  class OpTimer {
   public:
    OpTimer(CpuBackend* backend, OpId op);
    ~OpTimer();

   private:
    CpuBackend* backend_;
    OpId op_;
    int64_t start_ = 0;
  };

  const CpuIsa isa_;
  WeightArena arena_;  // before pool_ and every packed object that points into it
  WorkPool pool_;
  bool op_stats_on_ = false;
  int64_t op_calls_[kNumOps] = {};
  int64_t op_nanos_[kNumOps] = {};
  const GemmKernel gemm_;
  const AttentionKernel attention_;
  const SiluMulKernel silu_mul_;
  BackendLimits limits_;
  bool reserved_ = false;
  int64_t scratch_per_thread_ = 0;
  AlignedBuffer scratch_;             // [threads][scratch_per_thread_] floats
  std::vector<GemmItem> gemm_items_;  // capacity fixed by Reserve()
  std::vector<AttentionTile> attention_tiles_;
  std::vector<int32_t> permute_cursor_;  // [num_experts]
  ops::RopeTable rope_;
};

// The factory app/ uses for `--backend cpu`.
StatusOr<std::unique_ptr<Backend>> CreateCpuBackend(const CpuBackendOptions& options);

}  // namespace moe::engine::cpu
