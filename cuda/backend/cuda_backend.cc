#include "cuda/backend/cuda_backend.h"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <limits>

#include "cuda/backend/cuda_status.h"
#include "cuda/kernels/fixed_order_gemm.h"
#include "cuda/kernels/gated_activation.h"
#include "cuda/kernels/grouped_gemm.h"
#include "cuda/kernels/grouped_gemm_cublas.h"
#include "cuda/kernels/moe_index_math.h"
#include "cuda/kernels/paged_attention.h"
#include "cuda/kernels/permute.h"
#include "cuda/kernels/qk_norm_rope.h"
#include "cuda/kernels/rmsnorm.h"
#include "cuda/kernels/router_topk.h"
#include "cuda/kernels/row_ops.h"
#include "cuda/kernels/unpermute_combine.h"

namespace moe::cuda {
namespace {

using engine::Stream;

bool IsFloat(DType d) { return d == DType::kF32 || d == DType::kBF16; }

size_t Align256(size_t bytes) { return (bytes + 255) / 256 * 256; }

bool FitsInt(int64_t v) { return v >= 0 && v <= std::numeric_limits<int>::max(); }

bool Aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// Checks a TensorView argument: float dtype, at least `rows` rows of exactly `cols` columns, a
// valid stride and (when rows > 0) data.
Status CheckView(std::string_view op, std::string_view name, const TensorView& v, int64_t rows,
                 int64_t cols) {
  if (!IsFloat(v.dtype)) {
    return InvalidArgument("CudaBackend::", op, ": ", name, " has dtype ", DTypeName(v.dtype),
                           "; F32 or BF16 expected");
  }
  if (v.cols != cols) {
    return InvalidArgument("CudaBackend::", op, ": ", name, " has ", v.cols, " columns, ", cols,
                           " expected");
  }
  if (v.rows < rows) {
    return InvalidArgument("CudaBackend::", op, ": ", name, " has ", v.rows, " rows, at least ",
                           rows, " expected");
  }
  if (v.rows > 1 && v.row_stride < v.cols) {
    return InvalidArgument("CudaBackend::", op, ": ", name, " has row stride ", v.row_stride, " < ",
                           v.cols, " columns");
  }
  if (rows > 0 && v.data == nullptr) {
    return InvalidArgument("CudaBackend::", op, ": ", name, " has no data");
  }
  return OkStatus();
}

// Row stride for a kernel: views with one row may carry stride 0.
int64_t Stride(const TensorView& v) { return std::max(v.row_stride, v.cols); }

template <typename T>
Status CheckPointer(std::string_view op, std::string_view name, const T* p, bool needed) {
  if (needed && p == nullptr) {
    return InvalidArgument("CudaBackend::", op, ": ", name, " is null");
  }
  return OkStatus();
}

cudaDataType_t CublasType(DType d) { return d == DType::kF32 ? CUDA_R_32F : CUDA_R_16BF; }

}  // namespace

std::string_view GroupedGemmKernelName(GroupedGemmKernel kernel) {
  return kernel == GroupedGemmKernel::kCustom ? "custom" : "cublas";
}

StatusOr<GroupedGemmKernel> ParseGroupedGemmKernel(std::string_view name) {
  if (name == "cublas") return GroupedGemmKernel::kCublas;
  if (name == "custom") return GroupedGemmKernel::kCustom;
  return InvalidArgument("grouped GEMM kernel '", name, "': choose cublas | custom");
}

Status CudaBackendOptions::Validate() const {
  if (device < 0) return InvalidArgument("CUDA device ", device, " must be >= 0");
  if (cublas_workspace_bytes < (size_t{1} << 20)) {
    return InvalidArgument("cuBLAS workspace of ", cublas_workspace_bytes,
                           " bytes: at least 1 MiB");
  }
  return OkStatus();
}

int CudaDeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

CudaBackend::CudaBackend(const CudaBackendOptions& options) : options_(options) {}

StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(const CudaBackendOptions& options) {
  MOE_RETURN_IF_ERROR(options.Validate());
  const int count = CudaDeviceCount();
  if (count == 0) {
    return Unavailable("no CUDA device: the CUDA runtime found no GPU (or no driver)");
  }
  if (options.device >= count) {
    return InvalidArgument("CUDA device ", options.device, " does not exist (", count, " device",
                           count == 1 ? "" : "s", ")");
  }
  auto backend = std::unique_ptr<CudaBackend>(new CudaBackend(options));
  MOE_RETURN_IF_ERROR(backend->Init());
  return backend;
}

Status CudaBackend::Init() {
  MOE_RETURN_IF_CUDA_ERROR(cudaSetDevice(options_.device), "Create");
  cudaDeviceProp prop{};
  MOE_RETURN_IF_CUDA_ERROR(cudaGetDeviceProperties(&prop, options_.device), "Create");
  if (prop.major < 8) {
    return Unavailable("CUDA device ", options_.device, " (", prop.name, ") is sm_", prop.major,
                       prop.minor, "; the CUDA backend needs sm_80 or newer");
  }
  num_sms_ = prop.multiProcessorCount;
  char gib[32];
  std::snprintf(gib, sizeof(gib), "%.1f", static_cast<double>(prop.totalGlobalMem) / (1 << 30));
  device_description_ = std::string(prop.name) + " (device " + std::to_string(options_.device) +
                        ", sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ", " +
                        std::to_string(num_sms_) + " SMs, " + gib + " GiB)";
  MOE_RETURN_IF_CUDA_ERROR(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "Create");
  MOE_RETURN_IF_CUBLAS_ERROR(cublasCreate(&cublas_), "Create");
  MOE_RETURN_IF_CUBLAS_ERROR(cublasSetStream(cublas_, stream_), "Create");
  // f32 accumulation everywhere, also inside split-K reductions of bf16 GEMMs.
  MOE_RETURN_IF_CUBLAS_ERROR(
      cublasSetMathMode(cublas_, CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION), "Create");
  // A workspace of our own, so cuBLAS never allocates in the step path.
  MOE_ASSIGN_OR_RETURN(cublas_workspace_, DeviceAllocation::Create(options_.cublas_workspace_bytes,
                                                                   "the cuBLAS workspace"));
  MOE_RETURN_IF_CUBLAS_ERROR(
      cublasSetWorkspace(cublas_, cublas_workspace_.get(), cublas_workspace_.size()), "Create");
  return OkStatus();
}

CudaBackend::~CudaBackend() {
  cudaSetDevice(options_.device);
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  ReleaseWorkspace();
  if (cublas_ != nullptr) cublasDestroy(cublas_);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

void CudaBackend::ReleaseWorkspace() {
  workspace_ = DeviceAllocation();
  if (host_offsets_ != nullptr) cudaFreeHost(host_offsets_);
  host_offsets_ = nullptr;
  host_offsets_capacity_ = 0;
  host_offsets_source_ = nullptr;
  reserved_ = false;
  rope_head_dim_ = 0;
}

StatusOr<cudaStream_t> CudaBackend::Begin(std::string_view op, Stream stream, bool needs_reserve) {
  if (stream.index != 0) {
    return InvalidArgument("CudaBackend::", op, ": stream ", stream.index,
                           " does not exist (the CUDA backend has one stream, index 0)");
  }
  if (needs_reserve && !reserved_) {
    return FailedPrecondition("CudaBackend::", op, " before Reserve()");
  }
  MOE_RETURN_IF_CUDA_ERROR(cudaSetDevice(options_.device), op);
  ++op_count_;
  return stream_;
}

// ---------------------------------------------------------------------------------------------
// Memory.

StatusOr<std::unique_ptr<engine::Buffer>> CudaBackend::Allocate(size_t bytes) {
  MOE_RETURN_IF_CUDA_ERROR(cudaSetDevice(options_.device), "Allocate");
  MOE_ASSIGN_OR_RETURN(DeviceAllocation memory, DeviceAllocation::Create(bytes, "a buffer"));
  return std::unique_ptr<engine::Buffer>(new CudaBuffer(std::move(memory)));
}

Status CudaBackend::CopyToDevice(void* dst, const void* src, size_t bytes, Stream stream) {
  MOE_ASSIGN_OR_RETURN(cudaStream_t s, Begin("CopyToDevice", stream, false));
  if (bytes == 0) return OkStatus();
  return CudaStatus(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, s), "CopyToDevice");
}

Status CudaBackend::CopyToHost(void* dst, const void* src, size_t bytes, Stream stream) {
  MOE_ASSIGN_OR_RETURN(cudaStream_t s, Begin("CopyToHost", stream, false));
  if (bytes == 0) return OkStatus();
  MOE_RETURN_IF_CUDA_ERROR(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, s), "CopyToHost");
  return CudaStatus(cudaStreamSynchronize(s), "CopyToHost");
}

Status CudaBackend::Fill(void* dst, uint8_t byte, size_t bytes, Stream stream) {
  MOE_ASSIGN_OR_RETURN(cudaStream_t s, Begin("Fill", stream, false));
  if (bytes == 0) return OkStatus();
  return CudaStatus(cudaMemsetAsync(dst, byte, bytes, s), "Fill");
}

Status CudaBackend::Synchronize(Stream stream) {
  MOE_ASSIGN_OR_RETURN(cudaStream_t s, Begin("Synchronize", stream, false));
  return CudaStatus(cudaStreamSynchronize(s), "Synchronize");
}

Status CudaBackend::Reserve(const engine::BackendLimits& limits) {
  if (limits.max_tokens < 0 || limits.max_seqs < 0 || limits.max_context < 0 ||
      limits.num_heads < 0 || limits.num_kv_heads < 0 || limits.head_dim < 0 || limits.hidden < 0 ||
      limits.num_experts < 0 || limits.top_k < 0 || limits.max_intermediate < 0) {
    return InvalidArgument("CudaBackend::Reserve: limits must be non-negative");
  }
  if (limits.num_experts > kGroupedGemmMaxExperts) {
    return InvalidArgument("CudaBackend::Reserve: ", limits.num_experts, " experts; at most ",
                           kGroupedGemmMaxExperts);
  }
  MOE_RETURN_IF_CUDA_ERROR(cudaSetDevice(options_.device), "Reserve");
  MOE_RETURN_IF_CUDA_ERROR(cudaStreamSynchronize(stream_), "Reserve");
  ReleaseWorkspace();

  const int64_t slots = static_cast<int64_t>(limits.max_tokens) * limits.top_k;
  const bool moe = limits.num_experts > 0 && limits.top_k > 0;
  PermuteProblem permute;
  permute.num_tokens = limits.max_tokens;
  permute.top_k = std::max(limits.top_k, 1);
  permute.num_experts = std::max(limits.num_experts, 1);
  permute.row_bytes = 1;
  permute_ws_bytes_ = moe ? PermuteWorkspaceSize(permute) : 0;
  grouped_ptrs_ws_bytes_ = moe ? CublasGroupedGemmWorkspaceSize(limits.num_experts) : 0;
  // The cuBLAS paths exist only outside deterministic mode.
  const bool cublas = !options_.deterministic;
  gate_up_scratch_elems_ =
      moe && cublas ? static_cast<size_t>(slots) * 2 * static_cast<size_t>(limits.max_intermediate)
                    : 0;
  bias_scratch_elems_ = cublas ? static_cast<size_t>(limits.max_tokens) *
                                     (limits.num_heads + 2 * limits.num_kv_heads) * limits.head_dim
                               : 0;
  PagedAttentionProblem attention;
  attention.num_seqs = limits.max_seqs;
  attention_ws_bytes_ = PagedAttentionWorkspaceSize(attention);
  rope_table_elems_ = static_cast<size_t>(std::max(limits.head_dim, kAttentionMaxHeadDim) / 2);

  const size_t sizes[] = {Align256(permute_ws_bytes_),
                          Align256(grouped_ptrs_ws_bytes_),
                          Align256(gate_up_scratch_elems_ * sizeof(Bf16)),
                          Align256(bias_scratch_elems_ * sizeof(float)),
                          Align256(attention_ws_bytes_),
                          Align256(rope_table_elems_ * sizeof(float))};
  size_t total = 0;
  for (size_t s : sizes) total += s;
  MOE_ASSIGN_OR_RETURN(workspace_, DeviceAllocation::Create(total, "the op workspace"));
  char* at = workspace_.as<char>();
  void** targets[] = {&permute_ws_,
                      &grouped_ptrs_ws_,
                      reinterpret_cast<void**>(&gate_up_scratch_),
                      reinterpret_cast<void**>(&bias_scratch_),
                      &attention_ws_,
                      reinterpret_cast<void**>(&rope_table_)};
  for (size_t i = 0; i < std::size(sizes); ++i) {
    *targets[i] = sizes[i] > 0 ? at : nullptr;
    at += sizes[i];
  }
  if (moe) {
    MOE_RETURN_IF_CUDA_ERROR(cudaMallocHost(reinterpret_cast<void**>(&host_offsets_),
                                            static_cast<size_t>(limits.num_experts + 1) * 4),
                             "Reserve");
    host_offsets_capacity_ = limits.num_experts + 1;
  }
  limits_ = limits;
  reserved_ = true;
  return OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Weights.

StatusOr<std::unique_ptr<engine::PackedLinear>> CudaBackend::PackLinear(
    const engine::LinearSource& source) {
  MOE_RETURN_IF_CUDA_ERROR(cudaSetDevice(options_.device), "PackLinear");
  MOE_ASSIGN_OR_RETURN(auto packed, PackCudaLinear(source));
  return std::unique_ptr<engine::PackedLinear>(std::move(packed));
}

StatusOr<std::unique_ptr<engine::PackedExperts>> CudaBackend::PackExperts(
    const engine::ExpertsSource& source) {
  MOE_RETURN_IF_CUDA_ERROR(cudaSetDevice(options_.device), "PackExperts");
  MOE_ASSIGN_OR_RETURN(auto packed, PackCudaExperts(source));
  return std::unique_ptr<engine::PackedExperts>(std::move(packed));
}

StatusOr<std::unique_ptr<engine::PackedEmbedding>> CudaBackend::PackEmbedding(
    const model::TensorEntry& table) {
  MOE_RETURN_IF_CUDA_ERROR(cudaSetDevice(options_.device), "PackEmbedding");
  MOE_ASSIGN_OR_RETURN(auto packed, PackCudaEmbedding(table));
  return std::unique_ptr<engine::PackedEmbedding>(std::move(packed));
}

StatusOr<std::unique_ptr<engine::Buffer>> CudaBackend::UploadF32(const model::TensorEntry& vector) {
  MOE_RETURN_IF_CUDA_ERROR(cudaSetDevice(options_.device), "UploadF32");
  MOE_ASSIGN_OR_RETURN(auto buffer, UploadF32Vector(vector));
  return std::unique_ptr<engine::Buffer>(std::move(buffer));
}

// ---------------------------------------------------------------------------------------------
// Row ops.

Status CudaBackend::Embed(const engine::EmbedArgs& a, Stream stream) {
  constexpr std::string_view kOp = "Embed";
  MOE_ASSIGN_OR_RETURN(cudaStream_t s, Begin(kOp, stream, true));
  const auto* table = dynamic_cast<const CudaEmbedding*>(a.table);
  if (table == nullptr) return InvalidArgument("CudaBackend::Embed: the table is not a CUDA one");
  if (a.num_tokens < 0) return InvalidArgument("CudaBackend::Embed: negative num_tokens");
  MOE_RETURN_IF_ERROR(CheckView(kOp, "out", a.out, a.num_tokens, table->hidden));
  MOE_RETURN_IF_ERROR(CheckPointer(kOp, "token_ids", a.token_ids, a.num_tokens > 0));
  RowCopyProblem problem;
  problem.num_rows = a.num_tokens;
  problem.cols = table->hidden;
  problem.src_rows = table->vocab;
  problem.dst_rows = a.num_tokens;
  problem.src_dtype = DType::kBF16;
  problem.dst_dtype = a.out.dtype;
  RowCopyPlane planes[kRowCopyMaxPlanes];
  planes[0].src = table->table();
  planes[0].dst = a.out.data;
  planes[0].dst_stride = Stride(a.out);
  return CudaStatus(RowCopy(problem, RowCopyIndices{a.token_ids, nullptr}, planes, s), kOp);
}

Status CudaBackend::GatherRows(const engine::GatherRowsArgs& a, Stream stream) {
  constexpr std::string_view kOp = "GatherRows";
  MOE_ASSIGN_OR_RETURN(cudaStream_t s, Begin(kOp, stream, true));
  if (a.num_indices < 0) return InvalidArgument("CudaBackend::GatherRows: negative num_indices");
  MOE_RETURN_IF_ERROR(CheckView(kOp, "x", a.x, 0, a.x.cols));
  MOE_RETURN_IF_ERROR(CheckView(kOp, "out", a.out, a.num_indices, a.x.cols));
  MOE_RETURN_IF_ERROR(CheckPointer(kOp, "indices", a.indices, a.num_indices > 0));
  if (a.num_indices > 0 && a.x.data == nullptr) {
    return InvalidArgument("CudaBackend::GatherRows: x has no data");
  }
  if (a.x.cols == 0) return OkStatus();
  RowCopyProblem problem;
  problem.num_rows = a.num_indices;
  problem.cols = a.x.cols;
  problem.src_rows = a.x.rows;
  problem.dst_rows = a.num_indices;
  problem.src_dtype = a.x.dtype;
  problem.dst_dtype = a.out.dtype;
  RowCopyPlane planes[kRowCopyMaxPlanes];
  planes[0] = RowCopyPlane{a.x.data, Stride(a.x), a.out.data, Stride(a.out)};
  return CudaStatus(RowCopy(problem, RowCopyIndices{a.indices, nullptr}, planes, s), kOp);
}

Status CudaBackend::KvWrite(const engine::KvWriteArgs& a, Stream stream) {
  constexpr std::string_view kOp = "KvWrite";
  MOE_ASSIGN_OR_RETURN(cudaStream_t s, Begin(kOp, stream, true));
  const int64_t width = a.cache.k.cols;
  if (a.num_tokens < 0) return InvalidArgument("CudaBackend::KvWrite: negative num_tokens");
  MOE_RETURN_IF_ERROR(CheckView(kOp, "k", a.k, a.num_tokens, width));
  MOE_RETURN_IF_ERROR(CheckView(kOp, "v", a.v, a.num_tokens, width));
  MOE_RETURN_IF_ERROR(CheckView(kOp, "cache.k", a.cache.k, 0, width));
  MOE_RETURN_IF_ERROR(CheckView(kOp, "cache.v", a.cache.v, a.cache.k.rows, width));
  MOE_RETURN_IF_ERROR(CheckPointer(kOp, "slot_mapping", a.slot_mapping, a.num_tokens > 0));
  if (a.k.dtype != a.v.dtype || a.cache.k.dtype != a.cache.v.dtype) {
    return InvalidArgument("CudaBackend::KvWrite: k and v (and their caches) must share a dtype");
  }
  if (width == 0 || a.num_tokens == 0) return OkStatus();
  RowCopyProblem problem;
  problem.num_rows = a.num_tokens;
  problem.cols = width;
  problem.src_rows = a.num_tokens;
  problem.dst_rows = a.cache.k.rows;
  problem.src_dtype = a.k.dtype;
  problem.dst_dtype = a.cache.k.dtype;
  problem.num_planes = 2;
  RowCopyPlane planes[kRowCopyMaxPlanes];
  planes[0] = RowCopyPlane{a.k.data, Stride(a.k), a.cache.k.data, Stride(a.cache.k)};
  planes[1] = RowCopyPlane{a.v.data, Stride(a.v), a.cache.v.data, Stride(a.cache.v)};
  return CudaStatus(RowCopy(problem, RowCopyIndices{nullptr, a.slot_mapping}, planes, s), kOp);
}

Status CudaBackend::RmsNorm(const engine::RmsNormArgs& a, Stream stream) {
  constexpr std::string_view kOp = "RmsNorm";
  MOE_ASSIGN_OR_RETURN(cudaStream_t s, Begin(kOp, stream, true));
  MOE_RETURN_IF_ERROR(CheckView(kOp, "x", a.x, a.x.rows, a.x.cols));
  MOE_RETURN_IF_ERROR(CheckView(kOp, "out", a.out, a.x.rows, a.x.cols));
  if (a.add.data != nullptr) {
    MOE_RETURN_IF_ERROR(CheckView(kOp, "add", a.add, a.x.rows, a.x.cols));
    if (a.add.dtype != a.x.dtype) {
      return InvalidArgument("CudaBackend::RmsNorm: add must have x's dtype");
    }
  }
  MOE_RETURN_IF_ERROR(CheckPointer(kOp, "weight", a.weight, a.x.rows > 0));
  if (!FitsInt(a.x.rows)) return InvalidArgument("CudaBackend::RmsNorm: too many rows");
  if (a.x.rows == 0 || a.x.cols == 0) return OkStatus();
  RmsNormProblem problem;
  problem.num_rows = static_cast<int>(a.x.rows);
  problem.cols = a.x.cols;
  problem.x_dtype = a.x.dtype;
  problem.out_dtype = a.out.dtype;
  problem.x_stride = Stride(a.x);
  problem.add_stride = a.add.data != nullptr ? Stride(a.add) : 0;
  problem.out_stride = Stride(a.out);
  problem.eps = a.eps;
  return CudaStatus(moe::cuda::RmsNorm(problem, {a.x.data, a.add.data, a.weight, a.out.data}, s),
                    kOp);
}

Status CudaBackend::QkNormRope(const engine::QkNormRopeArgs& a, Stream stream) {
  constexpr std::string_view kOp = "QkNormRope";
  MOE_ASSIGN_OR_RETURN(cudaStream_t s, Begin(kOp, stream, true));
  if (a.num_tokens < 0 || a.num_heads <= 0 || a.num_kv_heads <= 0 || a.head_dim <= 0 ||
      a.head_dim % 2 != 0) {
    return InvalidArgument("CudaBackend::QkNormRope: bad sizes (tokens ", a.num_tokens, ", heads ",
                           a.num_heads, "/", a.num_kv_heads, ", head_dim ", a.head_dim, ")");
  }
  MOE_RETURN_IF_ERROR(
      CheckView(kOp, "q", a.q, a.num_tokens, static_cast<int64_t>(a.num_heads) * a.head_dim));
  MOE_RETURN_IF_ERROR(
      CheckView(kOp, "k", a.k, a.num_tokens, static_cast<int64_t>(a.num_kv_heads) * a.head_dim));
  if (a.q.dtype != a.k.dtype) return InvalidArgument("CudaBackend::QkNormRope: q and k dtypes");
  MOE_RETURN_IF_ERROR(CheckPointer(kOp, "positions", a.positions, a.num_tokens > 0));
  const bool norm = a.norm != model::QkNormKind::kNone;
  MOE_RETURN_IF_ERROR(CheckPointer(kOp, "q_norm_weight", a.q_norm_weight, norm));
  MOE_RETURN_IF_ERROR(CheckPointer(kOp, "k_norm_weight", a.k_norm_weight, norm));
  if (static_cast<size_t>(a.head_dim / 2) > rope_table_elems_) {
    return InvalidArgument("CudaBackend::QkNormRope: head_dim ", a.head_dim,
                           " exceeds the Reserve()d head_dim");
  }
  if (a.num_tokens == 0) return OkStatus();
  if (a.head_dim != rope_head_dim_ || a.rope_theta != rope_theta_) {
    // Pageable source: staged before cudaMemcpyAsync returns, so rope_host_ may change later.
    rope_host_.assign(static_cast<size_t>(a.head_dim / 2), 0.f);
    ComputeRopeInverseFrequencies(a.head_dim, static_cast<double>(a.rope_theta), rope_host_.data());
    MOE_RETURN_IF_CUDA_ERROR(
        cudaMemcpyAsync(rope_table_, rope_host_.data(), rope_host_.size() * sizeof(float),
                        cudaMemcpyHostToDevice, s),
        kOp);
    rope_head_dim_ = a.head_dim;
    rope_theta_ = a.rope_theta;
  }
  QkNormRopeProblem problem;
  problem.num_tokens = a.num_tokens;
  problem.num_heads = a.num_heads;
  problem.num_kv_heads = a.num_kv_heads;
  problem.head_dim = a.head_dim;
  problem.dtype = a.q.dtype;
  problem.q_stride = Stride(a.q);
  problem.k_stride = Stride(a.k);
  problem.norm = a.norm == model::QkNormKind::kPerHead ? QkNorm::kPerHead
                 : a.norm == model::QkNormKind::kFull  ? QkNorm::kFull
                                                       : QkNorm::kNone;
  problem.eps = a.eps;
  if (!QkNormRopeCanImplement(problem)) {
    return InvalidArgument("CudaBackend::QkNormRope: unsupported shape (q row of ",
                           a.num_heads * a.head_dim, " elements; at most ", kQkNormRopeMaxRow, ")");
  }
  QkNormRopeBuffers buffers{a.q.data,        a.k.data,        a.positions,
                            a.q_norm_weight, a.k_norm_weight, rope_table_};
  return CudaStatus(moe::cuda::QkNormRope(problem, buffers, s), kOp);
}

Status CudaBackend::Attention(const engine::AttentionArgs& a, Stream stream) {
  constexpr std::string_view kOp = "Attention";
  MOE_ASSIGN_OR_RETURN(cudaStream_t s, Begin(kOp, stream, true));
  if (a.num_tokens < 0 || a.num_seqs < 0 || a.num_heads <= 0 || a.num_kv_heads <= 0 ||
      a.head_dim <= 0 || a.num_heads % a.num_kv_heads != 0) {
    return InvalidArgument("CudaBackend::Attention: bad sizes (heads ", a.num_heads, "/",
                           a.num_kv_heads, ", head_dim ", a.head_dim, ")");
  }
  const int64_t q_width = static_cast<int64_t>(a.num_heads) * a.head_dim;
  const int64_t kv_width = static_cast<int64_t>(a.num_kv_heads) * a.head_dim;
  MOE_RETURN_IF_ERROR(CheckView(kOp, "q", a.q, a.num_tokens, q_width));
  MOE_RETURN_IF_ERROR(CheckView(kOp, "out", a.out, a.num_tokens, q_width));
  MOE_RETURN_IF_ERROR(CheckView(kOp, "cache.k", a.cache.k, 0, kv_width));
  MOE_RETURN_IF_ERROR(CheckView(kOp, "cache.v", a.cache.v, a.cache.k.rows, kv_width));
  if (a.q.dtype != a.cache.k.dtype || a.cache.v.dtype != a.cache.k.dtype ||
      a.out.dtype != a.q.dtype) {
    return InvalidArgument("CudaBackend::Attention: q, the cache and out must share a dtype");
  }
  if (Stride(a.cache.k) != Stride(a.cache.v)) {
    return InvalidArgument("CudaBackend::Attention: K and V caches must share a row stride");
  }
  if (a.num_seqs > limits_.max_seqs) {
    return InvalidArgument("CudaBackend::Attention: ", a.num_seqs,
                           " sequences exceed the Reserve()d max_seqs ", limits_.max_seqs);
  }
  const bool any = a.num_tokens > 0 && a.num_seqs > 0;
  MOE_RETURN_IF_ERROR(CheckPointer(kOp, "query_start", a.query_start, any));
  MOE_RETURN_IF_ERROR(CheckPointer(kOp, "positions", a.positions, any));
  MOE_RETURN_IF_ERROR(CheckPointer(kOp, "block_tables", a.block_tables, any));
  if (!any) return OkStatus();
  PagedAttentionProblem problem;
  problem.num_tokens = a.num_tokens;
  problem.num_seqs = a.num_seqs;
  problem.num_heads = a.num_heads;
  problem.num_kv_heads = a.num_kv_heads;
  problem.head_dim = a.head_dim;
  problem.block_size = a.cache.block_size;
  problem.max_blocks_per_seq = a.max_blocks_per_seq;
  problem.dtype = a.q.dtype;
  problem.q_stride = Stride(a.q);
  problem.cache_stride = Stride(a.cache.k);
  problem.cache_slots = a.cache.k.rows;
  problem.out_stride = Stride(a.out);
  problem.scale = a.scale;
  problem.sliding_window = a.sliding_window;
  problem.num_sms = num_sms_;
  if (!PagedAttentionCanImplement(problem)) {
    return InvalidArgument("CudaBackend::Attention: unsupported shape (head_dim ", a.head_dim,
                           "; at most ", kAttentionMaxHeadDim, ")");
  }
  PagedAttentionBuffers buffers{a.q.data,    a.cache.k.data, a.cache.v.data, a.query_start,
                                a.positions, a.block_tables, a.out.data};
  return CudaStatus(PagedAttention(problem, buffers, attention_ws_, attention_ws_bytes_, s), kOp);
}

Status CudaBackend::SiluMul(const engine::SiluMulArgs& a, Stream stream) {
  constexpr std::string_view kOp = "SiluMul";
  MOE_ASSIGN_OR_RETURN(cudaStream_t s, Begin(kOp, stream, true));
  MOE_RETURN_IF_ERROR(CheckView(kOp, "x", a.x, a.x.rows, 2 * a.out.cols));
  MOE_RETURN_IF_ERROR(CheckView(kOp, "out", a.out, a.x.rows, a.out.cols));
  if (a.x.rows == 0 || a.out.cols == 0) return OkStatus();
  GatedActivationProblem problem;
  problem.num_rows = a.x.rows;
  problem.features = a.out.cols;
  problem.in_dtype = a.x.dtype;
  problem.out_dtype = a.out.dtype;
  problem.in_stride = Stride(a.x);
  problem.out_stride = Stride(a.out);
  problem.layout = GatedLayout::kHalves;
  return CudaStatus(GatedActivation(problem, a.x.data, a.out.data, s), kOp);
}

// ---------------------------------------------------------------------------------------------
// Dense GEMM.

Status CudaBackend::Linear(const engine::LinearArgs& a, Stream stream) {
  constexpr std::string_view kOp = "Linear";
  MOE_ASSIGN_OR_RETURN(cudaStream_t s, Begin(kOp, stream, true));
  const auto* w = dynamic_cast<const CudaLinear*>(a.weight);
  if (w == nullptr) return InvalidArgument("CudaBackend::Linear: the weight is not a CUDA one");
  MOE_RETURN_IF_ERROR(CheckView(kOp, "x", a.x, a.x.rows, w->in_features));
  MOE_RETURN_IF_ERROR(CheckView(kOp, "out", a.out, a.x.rows, w->out_features));
  const int64_t m = a.x.rows;
  if (m == 0 || w->out_features == 0) return OkStatus();
  if (!FitsInt(m) || !FitsInt(w->out_features) || !FitsInt(w->in_features) ||
      !FitsInt(Stride(a.x)) || !FitsInt(Stride(a.out))) {
    return InvalidArgument("CudaBackend::Linear: sizes beyond 32-bit GEMM arguments");
  }
  const bool fixed_order = a.x.dtype == DType::kF32 || options_.deterministic;
  const bool bias_fits = static_cast<size_t>(m * w->out_features) <= bias_scratch_elems_;
  if (fixed_order || (w->has_bias && a.out.dtype != DType::kF32 && !bias_fits)) {
    FixedGemmProblem problem;
    problem.rows = m;
    problem.n = static_cast<int>(w->out_features);
    problem.k = static_cast<int>(w->in_features);
    problem.a_dtype = a.x.dtype;
    problem.out_dtype = a.out.dtype;
    problem.lda = Stride(a.x);
    problem.ldc = Stride(a.out);
    FixedGemmBuffers buffers;
    buffers.a = a.x.data;
    buffers.weights = w->weights();
    buffers.bias = w->bias();
    buffers.out = a.out.data;
    return CudaStatus(FixedOrderGemm(problem, buffers, s), kOp);
  }
  // Row-major out[m, n] = x[m, k] . W[n, k]^T is the column-major out^T (n x m) = W^T x^T.
  const int n = static_cast<int>(w->out_features);
  const int k = static_cast<int>(w->in_features);
  const float alpha = 1.f;
  const float beta = 0.f;
  const bool via_scratch = w->has_bias && a.out.dtype != DType::kF32;
  void* c = via_scratch ? static_cast<void*>(bias_scratch_) : a.out.data;
  const DType c_dtype = via_scratch ? DType::kF32 : a.out.dtype;
  const int ldc = via_scratch ? n : static_cast<int>(Stride(a.out));
  MOE_RETURN_IF_CUBLAS_ERROR(cublasSetStream(cublas_, s), kOp);
  MOE_RETURN_IF_CUBLAS_ERROR(
      cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, n, static_cast<int>(m), k, &alpha,
                   w->weights(), CUDA_R_16BF, k, a.x.data, CUDA_R_16BF,
                   static_cast<int>(Stride(a.x)), &beta, c, CublasType(c_dtype), ldc,
                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      kOp);
  if (!w->has_bias) return OkStatus();
  AddBiasConvertProblem bias;
  bias.num_rows = m;
  bias.cols = n;
  bias.out_dtype = a.out.dtype;
  bias.in_stride = ldc;
  bias.out_stride = Stride(a.out);
  return CudaStatus(AddBiasConvert(bias, static_cast<const float*>(c), w->bias(), a.out.data, s),
                    kOp);
}

// ---------------------------------------------------------------------------------------------
// MoE.

Status CudaBackend::RouterTopK(const engine::RouterTopKArgs& a, Stream stream) {
  constexpr std::string_view kOp = "RouterTopK";
  MOE_ASSIGN_OR_RETURN(cudaStream_t s, Begin(kOp, stream, true));
  if (a.num_tokens < 0) return InvalidArgument("CudaBackend::RouterTopK: negative num_tokens");
  MOE_RETURN_IF_ERROR(CheckView(kOp, "logits", a.logits, a.num_tokens, a.num_experts));
  MOE_RETURN_IF_ERROR(CheckPointer(kOp, "expert_ids", a.expert_ids, a.num_tokens > 0));
  MOE_RETURN_IF_ERROR(CheckPointer(kOp, "expert_weights", a.expert_weights, a.num_tokens > 0));
  RouterTopKProblem problem;
  problem.num_tokens = a.num_tokens;
  problem.num_experts = a.num_experts;
  problem.top_k = a.top_k;
  problem.logits_stride = Stride(a.logits);
  problem.logits_dtype = a.logits.dtype;
  problem.scoring = a.kind == model::RouterKind::kTopKSoftmax ? RouterScoring::kTopKSoftmax
                                                              : RouterScoring::kSoftmaxTopK;
  problem.renormalize = a.renormalize;
  problem.top_p = a.top_p;
  if (!RouterTopKCanImplement(problem)) {
    return InvalidArgument("CudaBackend::RouterTopK: unsupported (", a.num_experts,
                           " experts, top_k ", a.top_k, "; at most ", kRouterMaxExperts,
                           " experts and top_k <= min(E, ", kRouterMaxTopK, "))");
  }
  return CudaStatus(
      moe::cuda::RouterTopK(problem, {a.logits.data, a.expert_ids, a.expert_weights}, s), kOp);
}

Status CudaBackend::Permute(const engine::PermuteArgs& a, Stream stream) {
  constexpr std::string_view kOp = "Permute";
  MOE_ASSIGN_OR_RETURN(cudaStream_t s, Begin(kOp, stream, true));
  const int64_t slots = static_cast<int64_t>(a.num_tokens) * a.top_k;
  if (a.num_tokens < 0 || a.top_k <= 0 || a.num_experts <= 0) {
    return InvalidArgument("CudaBackend::Permute: bad sizes (tokens ", a.num_tokens, ", top_k ",
                           a.top_k, ", experts ", a.num_experts, ")");
  }
  MOE_RETURN_IF_ERROR(CheckView(kOp, "x", a.x, a.num_tokens, a.x.cols));
  MOE_RETURN_IF_ERROR(CheckView(kOp, "rows", a.rows, slots, a.x.cols));
  if (a.rows.dtype != a.x.dtype) {
    return InvalidArgument("CudaBackend::Permute: rows must have x's dtype (rows are copied)");
  }
  MOE_RETURN_IF_ERROR(CheckPointer(kOp, "expert_offsets", a.expert_offsets, true));
  PermuteProblem problem;
  problem.num_tokens = a.num_tokens;
  problem.top_k = a.top_k;
  problem.num_experts = a.num_experts;
  problem.row_bytes = a.x.cols * static_cast<int64_t>(DTypeSize(a.x.dtype));
  problem.x_stride_bytes = Stride(a.x) * static_cast<int64_t>(DTypeSize(a.x.dtype));
  problem.rows_stride_bytes = Stride(a.rows) * static_cast<int64_t>(DTypeSize(a.rows.dtype));
  if (problem.row_bytes == 0) {
    return InvalidArgument("CudaBackend::Permute: x has no columns");
  }
  if (!PermuteCanImplement(problem)) {
    return InvalidArgument("CudaBackend::Permute: unsupported (", a.num_experts,
                           " experts; at most ", kPermuteMaxExperts, ")");
  }
  if (PermuteWorkspaceSize(problem) > permute_ws_bytes_ && slots > 0) {
    return InvalidArgument("CudaBackend::Permute: ", a.num_tokens, " tokens x top_k ", a.top_k,
                           " x ", a.num_experts, " experts exceed the Reserve()d limits");
  }
  PermuteBuffers buffers;
  buffers.x = a.x.data;
  buffers.expert_ids = a.expert_ids;
  buffers.rows = slots > 0 ? a.rows.data : nullptr;
  buffers.expert_offsets = a.expert_offsets;
  buffers.row_to_token = a.row_to_token;
  buffers.slot_to_row = a.slot_to_row;
  return CudaStatus(moe::cuda::Permute(problem, buffers, permute_ws_, permute_ws_bytes_, s), kOp);
}

CudaBackend::GemmPath CudaBackend::GroupedPath(DType activations, bool custom_can_implement) const {
  if (activations == DType::kF32) return GemmPath::kFixedOrder;
  if (options_.grouped_gemm == GroupedGemmKernel::kCustom && custom_can_implement) {
    return GemmPath::kCustom;
  }
  return options_.deterministic ? GemmPath::kFixedOrder : GemmPath::kCublas;
}

StatusOr<const int32_t*> CudaBackend::HostExpertOffsets(const int32_t* device_offsets,
                                                        int num_experts, cudaStream_t stream,
                                                        std::string_view op) {
  if (num_experts + 1 > host_offsets_capacity_) {
    return InvalidArgument("CudaBackend::", op, ": ", num_experts,
                           " experts exceed the Reserve()d num_experts");
  }
  // Reuse the copy made by the op right before this one (GroupedGemmSwiGlu -> GroupedGemm):
  // nothing else can have rewritten the offsets in between.
  if (host_offsets_source_ == device_offsets && host_offsets_experts_ == num_experts &&
      host_offsets_op_ + 1 == op_count_) {
    host_offsets_op_ = op_count_;
    return host_offsets_;
  }
  MOE_RETURN_IF_CUDA_ERROR(
      cudaMemcpyAsync(host_offsets_, device_offsets, static_cast<size_t>(num_experts + 1) * 4,
                      cudaMemcpyDeviceToHost, stream),
      op);
  MOE_RETURN_IF_CUDA_ERROR(cudaStreamSynchronize(stream), op);
  host_offsets_source_ = device_offsets;
  host_offsets_experts_ = num_experts;
  host_offsets_op_ = op_count_;
  return host_offsets_;
}

namespace {

// Checks the host offsets the cuBLAS path is about to trust.
Status CheckHostOffsets(const int32_t* offsets, int num_experts, int64_t capacity,
                        std::string_view op) {
  if (offsets[0] != 0) {
    return Internal("CudaBackend::", op, ": expert_offsets[0] = ", offsets[0]);
  }
  for (int e = 0; e < num_experts; ++e) {
    if (offsets[e + 1] < offsets[e]) {
      return Internal("CudaBackend::", op, ": expert_offsets decrease at expert ", e);
    }
  }
  if (offsets[num_experts] > capacity) {
    return Internal("CudaBackend::", op, ": ", offsets[num_experts], " routed rows exceed the ",
                    capacity, " row buffers");
  }
  return OkStatus();
}

// The operand checks both grouped GEMMs share: CUDA experts, `in` [capacity, in_cols] and `out`
// [capacity, out_cols] of one dtype, device offsets, and sizes that fit the kernels' int
// arguments. `in_name` names the input in messages ("rows" or "h").
StatusOr<const CudaExperts*> CheckGroupedGemmOperands(std::string_view op,
                                                      const engine::PackedExperts* packed,
                                                      std::string_view in_name, TensorView in,
                                                      bool in_is_hidden, TensorView out,
                                                      const int32_t* expert_offsets) {
  const auto* experts = dynamic_cast<const CudaExperts*>(packed);
  if (experts == nullptr) {
    return InvalidArgument("CudaBackend::", op, ": the experts are not CUDA ones");
  }
  const int64_t capacity = in.rows;
  const int64_t in_cols = in_is_hidden ? experts->hidden : experts->intermediate;
  const int64_t out_cols = in_is_hidden ? experts->intermediate : experts->hidden;
  MOE_RETURN_IF_ERROR(CheckView(op, in_name, in, capacity, in_cols));
  MOE_RETURN_IF_ERROR(CheckView(op, "out", out, capacity, out_cols));
  MOE_RETURN_IF_ERROR(CheckPointer(op, "expert_offsets", expert_offsets, true));
  if (out.dtype != in.dtype) {
    return InvalidArgument("CudaBackend::", op, ": out must have the dtype of ", in_name);
  }
  if (capacity > 0 && (!FitsInt(capacity) || !FitsInt(Stride(in)) || !FitsInt(Stride(out)))) {
    return InvalidArgument("CudaBackend::", op, ": sizes beyond 32-bit arguments");
  }
  return experts;
}

}  // namespace

Status CudaBackend::GroupedGemmSwiGlu(const engine::GroupedGemmSwiGluArgs& a, Stream stream) {
  constexpr std::string_view kOp = "GroupedGemmSwiGlu";
  MOE_ASSIGN_OR_RETURN(cudaStream_t s, Begin(kOp, stream, true));
  MOE_ASSIGN_OR_RETURN(
      const CudaExperts* experts,
      CheckGroupedGemmOperands(kOp, a.experts, "rows", a.rows, true, a.out, a.expert_offsets));
  const int64_t capacity = a.rows.rows;
  const int num_experts = experts->num_experts;
  if (capacity == 0) return OkStatus();
  const int f = static_cast<int>(experts->intermediate);
  const int h = static_cast<int>(experts->hidden);

  GroupedGemmProblem custom;
  custom.num_experts = num_experts;
  custom.row_capacity = capacity;
  custom.n = 2 * f;
  custom.k = h;
  custom.lda = Stride(a.rows);
  custom.ldc = Stride(a.out);
  custom.epilogue = GroupedGemmEpilogue::kSwiGlu;
  const bool custom_ok =
      GroupedGemmCanImplement(custom) && Aligned(a.rows.data, 16) && Aligned(a.out.data, 4);
  switch (GroupedPath(a.rows.dtype, custom_ok)) {
    case GemmPath::kFixedOrder: {
      FixedGemmProblem problem;
      problem.num_groups = num_experts;
      problem.rows = capacity;
      problem.n = f;
      problem.k = h;
      problem.a_dtype = a.rows.dtype;
      problem.out_dtype = a.out.dtype;
      problem.lda = Stride(a.rows);
      problem.ldc = Stride(a.out);
      problem.epilogue = FixedGemmEpilogue::kSwiGluInterleaved;
      FixedGemmBuffers buffers;
      buffers.a = a.rows.data;
      buffers.weights = experts->gate_up();
      buffers.expert_offsets = a.expert_offsets;
      buffers.out = a.out.data;
      return CudaStatus(FixedOrderGemm(problem, buffers, s), kOp);
    }
    case GemmPath::kCustom: {
      GroupedGemmBuffers buffers;
      buffers.a = static_cast<const Bf16*>(a.rows.data);
      buffers.weights = experts->gate_up();
      buffers.expert_offsets = a.expert_offsets;
      buffers.out = static_cast<Bf16*>(a.out.data);
      return CudaStatus(moe::cuda::GroupedGemm(custom, buffers, nullptr, 0, s), kOp);
    }
    case GemmPath::kCublas:
      break;
  }
  MOE_ASSIGN_OR_RETURN(const int32_t* offsets,
                       HostExpertOffsets(a.expert_offsets, num_experts, s, kOp));
  MOE_RETURN_IF_ERROR(CheckHostOffsets(offsets, num_experts, capacity, kOp));
  const int64_t routed = offsets[num_experts];
  if (routed == 0) return OkStatus();
  if (static_cast<size_t>(routed) * 2 * f > gate_up_scratch_elems_) {
    return InvalidArgument("CudaBackend::GroupedGemmSwiGlu: ", routed, " rows x 2F ", 2 * f,
                           " exceed the Reserve()d scratch (max_tokens x top_k x 2 x "
                           "max_intermediate)");
  }
  CublasGroupedGemmProblem problem;
  problem.num_experts = num_experts;
  problem.n = 2 * f;
  problem.k = h;
  problem.lda = Stride(a.rows);
  problem.ldc = 2 * f;
  problem.host_expert_offsets = offsets;
  CublasGroupedGemmBuffers buffers;
  buffers.a = static_cast<const Bf16*>(a.rows.data);
  buffers.weights = experts->gate_up();
  buffers.expert_offsets = a.expert_offsets;
  buffers.out = gate_up_scratch_;
  MOE_RETURN_IF_CUBLAS_ERROR(
      CublasGroupedGemm(cublas_, problem, buffers, grouped_ptrs_ws_, grouped_ptrs_ws_bytes_, s),
      kOp);
  GatedActivationProblem act;
  act.num_rows = routed;
  act.features = f;
  act.in_dtype = DType::kBF16;
  act.out_dtype = a.out.dtype;
  act.in_stride = 2 * f;
  act.out_stride = Stride(a.out);
  act.layout = GatedLayout::kInterleaved8;
  return CudaStatus(GatedActivation(act, gate_up_scratch_, a.out.data, s), kOp);
}

Status CudaBackend::GroupedGemm(const engine::GroupedGemmArgs& a, Stream stream) {
  constexpr std::string_view kOp = "GroupedGemm";
  MOE_ASSIGN_OR_RETURN(cudaStream_t s, Begin(kOp, stream, true));
  MOE_ASSIGN_OR_RETURN(
      const CudaExperts* experts,
      CheckGroupedGemmOperands(kOp, a.experts, "h", a.h, false, a.out, a.expert_offsets));
  const int64_t capacity = a.h.rows;
  const int num_experts = experts->num_experts;
  if (capacity == 0) return OkStatus();
  const int f = static_cast<int>(experts->intermediate);
  const int h = static_cast<int>(experts->hidden);

  GroupedGemmProblem custom;
  custom.num_experts = num_experts;
  custom.row_capacity = capacity;
  custom.n = h;
  custom.k = f;
  custom.lda = Stride(a.h);
  custom.ldc = Stride(a.out);
  custom.epilogue = GroupedGemmEpilogue::kNone;
  const bool custom_ok =
      GroupedGemmCanImplement(custom) && Aligned(a.h.data, 16) && Aligned(a.out.data, 4);
  switch (GroupedPath(a.h.dtype, custom_ok)) {
    case GemmPath::kFixedOrder: {
      FixedGemmProblem problem;
      problem.num_groups = num_experts;
      problem.rows = capacity;
      problem.n = h;
      problem.k = f;
      problem.a_dtype = a.h.dtype;
      problem.out_dtype = a.out.dtype;
      problem.lda = Stride(a.h);
      problem.ldc = Stride(a.out);
      FixedGemmBuffers buffers;
      buffers.a = a.h.data;
      buffers.weights = experts->down();
      buffers.expert_offsets = a.expert_offsets;
      buffers.out = a.out.data;
      return CudaStatus(FixedOrderGemm(problem, buffers, s), kOp);
    }
    case GemmPath::kCustom: {
      GroupedGemmBuffers buffers;
      buffers.a = static_cast<const Bf16*>(a.h.data);
      buffers.weights = experts->down();
      buffers.expert_offsets = a.expert_offsets;
      buffers.out = static_cast<Bf16*>(a.out.data);
      return CudaStatus(moe::cuda::GroupedGemm(custom, buffers, nullptr, 0, s), kOp);
    }
    case GemmPath::kCublas:
      break;
  }
  MOE_ASSIGN_OR_RETURN(const int32_t* offsets,
                       HostExpertOffsets(a.expert_offsets, num_experts, s, kOp));
  MOE_RETURN_IF_ERROR(CheckHostOffsets(offsets, num_experts, capacity, kOp));
  if (offsets[num_experts] == 0) return OkStatus();
  CublasGroupedGemmProblem problem;
  problem.num_experts = num_experts;
  problem.n = h;
  problem.k = f;
  problem.lda = Stride(a.h);
  problem.ldc = Stride(a.out);
  problem.host_expert_offsets = offsets;
  CublasGroupedGemmBuffers buffers;
  buffers.a = static_cast<const Bf16*>(a.h.data);
  buffers.weights = experts->down();
  buffers.expert_offsets = a.expert_offsets;
  buffers.out = static_cast<Bf16*>(a.out.data);
  MOE_RETURN_IF_CUBLAS_ERROR(
      CublasGroupedGemm(cublas_, problem, buffers, grouped_ptrs_ws_, grouped_ptrs_ws_bytes_, s),
      kOp);
  return OkStatus();
}

Status CudaBackend::UnpermuteCombine(const engine::UnpermuteCombineArgs& a, Stream stream) {
  constexpr std::string_view kOp = "UnpermuteCombine";
  MOE_ASSIGN_OR_RETURN(cudaStream_t s, Begin(kOp, stream, true));
  if (a.num_tokens < 0 || a.top_k <= 0) {
    return InvalidArgument("CudaBackend::UnpermuteCombine: bad sizes (tokens ", a.num_tokens,
                           ", top_k ", a.top_k, ")");
  }
  const int64_t hidden = a.out.cols;
  MOE_RETURN_IF_ERROR(CheckView(kOp, "out", a.out, a.num_tokens, hidden));
  MOE_RETURN_IF_ERROR(CheckView(kOp, "y_rows", a.y_rows, 0, hidden));
  if (a.y_rows.dtype != a.out.dtype) {
    return InvalidArgument("CudaBackend::UnpermuteCombine: y_rows must have out's dtype");
  }
  const bool shared = a.shared.data != nullptr;
  if (shared) {
    MOE_RETURN_IF_ERROR(CheckView(kOp, "shared", a.shared, a.num_tokens, hidden));
    if (a.shared.dtype != a.out.dtype) {
      return InvalidArgument("CudaBackend::UnpermuteCombine: shared must have out's dtype");
    }
    if (a.shared_gate.data != nullptr) {
      MOE_RETURN_IF_ERROR(CheckView(kOp, "shared_gate", a.shared_gate, a.num_tokens, 1));
    }
  }
  const bool any = a.num_tokens > 0;
  MOE_RETURN_IF_ERROR(CheckPointer(kOp, "slot_to_row", a.slot_to_row, any));
  MOE_RETURN_IF_ERROR(CheckPointer(kOp, "expert_weights", a.expert_weights, any));
  if (!any || hidden == 0) return OkStatus();
  if (!FitsInt(hidden)) return InvalidArgument("CudaBackend::UnpermuteCombine: hidden too large");
  UnpermuteCombineProblem problem;
  problem.num_tokens = a.num_tokens;
  problem.top_k = a.top_k;
  problem.hidden = static_cast<int>(hidden);
  problem.dtype = a.out.dtype;
  problem.shared_gate_dtype =
      shared && a.shared_gate.data != nullptr ? a.shared_gate.dtype : DType::kF32;
  problem.y_rows_stride = Stride(a.y_rows);
  problem.shared_stride = shared ? Stride(a.shared) : 0;
  problem.shared_gate_stride = shared && a.shared_gate.data != nullptr ? Stride(a.shared_gate) : 0;
  problem.out_stride = Stride(a.out);
  UnpermuteCombineBuffers buffers;
  buffers.y_rows = a.y_rows.data;
  buffers.slot_to_row = a.slot_to_row;
  buffers.expert_weights = a.expert_weights;
  buffers.shared = shared ? a.shared.data : nullptr;
  buffers.shared_gate = shared ? a.shared_gate.data : nullptr;
  buffers.out = a.out.data;
  return CudaStatus(moe::cuda::UnpermuteCombine(problem, buffers, s), kOp);
}

}  // namespace moe::cuda
