// CudaBackend: engine::Backend on one NVIDIA GPU (sm_80+). Weights are bf16 on the device
// (cuda_weights.h); activations are F32 or BF16 per TensorView; every op is enqueued on the
// CUDA stream its Stream index names and returns without waiting, except where noted.
//
// Which kernel computes what:
//   Embed, GatherRows, KvWrite     row copies (kernels/row_ops)
//   RmsNorm                        kernels/rmsnorm (fused residual add)
//   QkNormRope                     kernels/qk_norm_rope
//   Attention                      kernels/paged_attention (online softmax, CUDA cores)
//   SiluMul                        kernels/gated_activation
//   RouterTopK, Permute,
//   UnpermuteCombine               the MoE kernels (kernels/router_topk, permute,
//   unpermute_combine) Linear                         BF16: cublasGemmEx (f32 compute); F32 or
//   --deterministic: the
//                                  fixed-order GEMM (kernels/fixed_order_gemm)
//   GroupedGemmSwiGlu/GroupedGemm  BF16: the cuBLAS grouped baseline (default) or the custom
//                                  mma.sync kernel (grouped_gemm=custom); F32, or deterministic
//                                  with the baseline selected: the fixed-order GEMM
//
// Costs worth knowing:
// - The cuBLAS grouped baseline needs each expert's row count on the host: GroupedGemmSwiGlu
//   copies expert_offsets to pinned host memory and waits for the stream (one device-to-host
//   synchronisation per MoE layer; GroupedGemm reuses the copy when it directly follows). That
//   stalls the CPU until routing finishes and leaves the GPU idle while the host enqueues the
//   GEMM. The custom kernel reads the offsets on the device and needs no sync; it becomes the
//   default once verified correct and faster on a GPU (issue 9).
// - The SwiGLU of the baseline is a separate pass over an [R, 2F] bf16 scratch (gate and up are
//   rounded to bf16 before silu(g) * u: within bf16 tolerance, not bitwise the reference).
// - CopyToHost waits for the stream (the data is valid on return, as on the CPU backends).
//   CopyToDevice from pageable host memory returns once the source has been staged, so the
//   caller may reuse it at once.
//
// Deterministic mode (options.deterministic, DESIGN.md §4): no cuBLAS. Dense and grouped GEMMs
// run the fixed-order kernel (or the mma.sync kernel when grouped_gemm=custom: also one k order
// for every tile), attention reduces over key blocks aligned at position 0 (always), and all
// other ops are per-row. A token's logits are then bit-identical whatever shares its step. The
// default mode stays within tolerance of the CPU reference and uses cuBLAS for speed.
//
// Streams: one CUDA stream (index 0) today; the workspace is shared, so ops of several streams
// must not run concurrently until it is split per stream.
//
// Threading: one thread calls the ops (the executor); Create may run on another thread.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "cuda/backend/cuda_weights.h"
#include "engine/backend.h"

namespace moe::cuda {

enum class GroupedGemmKernel {
  kCublas,  // cublasGemmGroupedBatchedEx baseline (one D2H sync per MoE layer)
  kCustom,  // mma.sync grouped GEMM with fused SwiGLU (grouped_gemm.h), no host sync
};

std::string_view GroupedGemmKernelName(GroupedGemmKernel kernel);  // "cublas" | "custom"
StatusOr<GroupedGemmKernel> ParseGroupedGemmKernel(std::string_view name);

struct CudaBackendOptions {
  int device = 0;
  bool deterministic = false;
  GroupedGemmKernel grouped_gemm = GroupedGemmKernel::kCublas;
  size_t cublas_workspace_bytes = size_t{32} << 20;

  Status Validate() const;
};

// CUDA devices the runtime sees: 0 without a driver or GPU (never an error; clears the sticky
// "no device" error).
int CudaDeviceCount();

class CudaBackend final : public engine::Backend {
 public:
  // Unavailable when no CUDA device is present or the device cannot be used; InvalidArgument for
  // bad options.
  static StatusOr<std::unique_ptr<CudaBackend>> Create(const CudaBackendOptions& options);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string Name() const override { return "cuda"; }
  bool HostAddressable() const override { return false; }

  StatusOr<std::unique_ptr<engine::Buffer>> Allocate(size_t bytes) override;
  Status CopyToDevice(void* dst, const void* src, size_t bytes, engine::Stream stream) override;
  Status CopyToHost(void* dst, const void* src, size_t bytes, engine::Stream stream) override;
  Status Fill(void* dst, uint8_t byte, size_t bytes, engine::Stream stream) override;
  Status Synchronize(engine::Stream stream) override;
  Status Reserve(const engine::BackendLimits& limits) override;

  StatusOr<std::unique_ptr<engine::PackedLinear>> PackLinear(
      const engine::LinearSource& source) override;
  StatusOr<std::unique_ptr<engine::PackedExperts>> PackExperts(
      const engine::ExpertsSource& source) override;
  StatusOr<std::unique_ptr<engine::PackedEmbedding>> PackEmbedding(
      const model::TensorEntry& table) override;
  StatusOr<std::unique_ptr<engine::Buffer>> UploadF32(const model::TensorEntry& vector) override;

  Status Embed(const engine::EmbedArgs& args, engine::Stream stream) override;
  Status RmsNorm(const engine::RmsNormArgs& args, engine::Stream stream) override;
  Status Linear(const engine::LinearArgs& args, engine::Stream stream) override;
  Status QkNormRope(const engine::QkNormRopeArgs& args, engine::Stream stream) override;
  Status KvWrite(const engine::KvWriteArgs& args, engine::Stream stream) override;
  Status Attention(const engine::AttentionArgs& args, engine::Stream stream) override;
  Status RouterTopK(const engine::RouterTopKArgs& args, engine::Stream stream) override;
  Status Permute(const engine::PermuteArgs& args, engine::Stream stream) override;
  Status GroupedGemmSwiGlu(const engine::GroupedGemmSwiGluArgs& args,
                           engine::Stream stream) override;
  Status GroupedGemm(const engine::GroupedGemmArgs& args, engine::Stream stream) override;
  Status UnpermuteCombine(const engine::UnpermuteCombineArgs& args, engine::Stream stream) override;
  Status SiluMul(const engine::SiluMulArgs& args, engine::Stream stream) override;
  Status GatherRows(const engine::GatherRowsArgs& args, engine::Stream stream) override;

  const CudaBackendOptions& options() const { return options_; }
  // "NVIDIA H100 80GB HBM3 (device 0, sm_90, 132 SMs, 79.1 GiB)".
  const std::string& device_description() const { return device_description_; }

 private:
  enum class GemmPath { kFixedOrder, kCustom, kCublas };

  explicit CudaBackend(const CudaBackendOptions& options);
  Status Init();
  // Makes the device current on the calling thread, resolves the stream, counts the op (for the
  // host copy of expert offsets). FailedPrecondition for ops before Reserve().
  StatusOr<cudaStream_t> Begin(std::string_view op, engine::Stream stream, bool needs_reserve);
  GemmPath GroupedPath(DType activations, bool custom_can_implement) const;
  // expert_offsets[0..E] on the host (pinned), copied and waited for unless the previous op
  // already did (the cuBLAS baseline's per-layer sync).
  StatusOr<const int32_t*> HostExpertOffsets(const int32_t* device_offsets, int num_experts,
                                             cudaStream_t stream, std::string_view op);
  void ReleaseWorkspace();

  CudaBackendOptions options_;
  std::string device_description_;
  int num_sms_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  DeviceAllocation cublas_workspace_;

  // Workspace, sized by Reserve().
  bool reserved_ = false;
  engine::BackendLimits limits_;
  DeviceAllocation workspace_;
  void* permute_ws_ = nullptr;
  size_t permute_ws_bytes_ = 0;
  void* grouped_ptrs_ws_ = nullptr;  // cuBLAS grouped pointer arrays
  size_t grouped_ptrs_ws_bytes_ = 0;
  Bf16* gate_up_scratch_ = nullptr;  // [max_tokens * top_k, 2 * max_intermediate]
  size_t gate_up_scratch_elems_ = 0;
  float* bias_scratch_ = nullptr;  // f32 GEMM result before its bias (bf16 Linear with bias)
  size_t bias_scratch_elems_ = 0;
  void* attention_ws_ = nullptr;
  size_t attention_ws_bytes_ = 0;
  float* rope_table_ = nullptr;  // [rope_table_elems_]
  size_t rope_table_elems_ = 0;
  int32_t* host_offsets_ = nullptr;  // pinned, [num_experts + 1]
  int host_offsets_capacity_ = 0;

  // The host copy of expert_offsets and the op count when it was made.
  uint64_t op_count_ = 0;
  const int32_t* host_offsets_source_ = nullptr;
  int host_offsets_experts_ = 0;
  uint64_t host_offsets_op_ = 0;

  // The inverse frequencies in rope_table_.
  int rope_head_dim_ = 0;
  float rope_theta_ = 0.f;
  std::vector<float> rope_host_;
};

}  // namespace moe::cuda
