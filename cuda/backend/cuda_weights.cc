#include "cuda/backend/cuda_weights.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "cuda/backend/cuda_status.h"
#include "cuda/kernels/grouped_gemm.h"
#include "cuda/kernels/moe_index_math.h"

namespace moe::cuda {
namespace {

Status CheckFloat(const model::TensorEntry& t) {
  if (t.dtype != DType::kF32 && t.dtype != DType::kBF16 && t.dtype != DType::kF16) {
    return InvalidArgument(t.file, ": tensor '", t.name, "' has dtype ", DTypeName(t.dtype),
                           "; the CUDA backend loads F32, BF16 or F16 weights");
  }
  return OkStatus();
}

template <typename Fn>
void ForEachAsFloat(const model::TensorEntry& t, Fn&& fn) {
  const int64_t n = t.NumElements();
  switch (t.dtype) {
    case DType::kF32: {
      const float* in = static_cast<const float*>(t.data);
      for (int64_t i = 0; i < n; ++i) fn(i, in[i]);
      break;
    }
    case DType::kBF16: {
      const uint16_t* in = static_cast<const uint16_t*>(t.data);
      for (int64_t i = 0; i < n; ++i) fn(i, Bf16BitsToFloat(in[i]));
      break;
    }
    case DType::kF16: {
      const uint16_t* in = static_cast<const uint16_t*>(t.data);
      for (int64_t i = 0; i < n; ++i) fn(i, Fp16BitsToFloat(in[i]));
      break;
    }
    default:
      break;
  }
}

Status Upload(void* dst, const void* src, size_t bytes, std::string_view what) {
  if (bytes == 0) return OkStatus();
  return CudaStatus(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), what);
}

}  // namespace

StatusOr<DeviceAllocation> DeviceAllocation::Create(size_t bytes, std::string_view what) {
  DeviceAllocation a;
  if (bytes == 0) return a;
  const cudaError_t err = cudaMalloc(&a.ptr_, bytes);
  if (err != cudaSuccess) {
    a.ptr_ = nullptr;
    cudaGetLastError();  // cudaMalloc's error is not sticky, but clear it for the next caller
    size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    return ResourceExhausted("CudaBackend: cannot allocate ", bytes, " bytes for ", what,
                             " on the device (", free_bytes, " of ", total_bytes,
                             " bytes free): ", cudaGetErrorString(err));
  }
  a.size_ = bytes;
  return a;
}

DeviceAllocation::~DeviceAllocation() {
  if (ptr_ != nullptr) cudaFree(ptr_);
}

DeviceAllocation::DeviceAllocation(DeviceAllocation&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)), size_(std::exchange(other.size_, 0)) {}

DeviceAllocation& DeviceAllocation::operator=(DeviceAllocation&& other) noexcept {
  if (this != &other) {
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = std::exchange(other.ptr_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

Status ConvertToBf16(const model::TensorEntry& t, Bf16* out) {
  MOE_RETURN_IF_ERROR(CheckFloat(t));
  if (t.dtype == DType::kBF16) {
    std::memcpy(out, t.data, static_cast<size_t>(t.NumElements()) * sizeof(Bf16));
    return OkStatus();
  }
  ForEachAsFloat(t, [&](int64_t i, float v) { out[i] = ToBf16(v); });
  return OkStatus();
}

Status ConvertToF32(const model::TensorEntry& t, float* out) {
  MOE_RETURN_IF_ERROR(CheckFloat(t));
  ForEachAsFloat(t, [&](int64_t i, float v) { out[i] = v; });
  return OkStatus();
}

StatusOr<std::unique_ptr<CudaLinear>> PackCudaLinear(const engine::LinearSource& source) {
  MOE_ASSIGN_OR_RETURN(const engine::LinearShape shape, engine::CheckLinearSource(source));
  const int64_t rows = shape.rows;
  const int64_t cols = shape.cols;
  auto packed = std::make_unique<CudaLinear>();
  MOE_ASSIGN_OR_RETURN(packed->storage,
                       DeviceAllocation::Create(static_cast<size_t>(rows * cols) * sizeof(Bf16),
                                                source.row_blocks[0]->name));
  std::vector<Bf16> staging;
  char* dst = packed->storage.as<char>();
  for (const model::TensorEntry* t : source.row_blocks) {
    staging.resize(static_cast<size_t>(t->NumElements()));
    MOE_RETURN_IF_ERROR(ConvertToBf16(*t, staging.data()));
    MOE_RETURN_IF_ERROR(Upload(dst, staging.data(), staging.size() * sizeof(Bf16), "PackLinear"));
    dst += staging.size() * sizeof(Bf16);
  }
  if (!source.biases.empty()) {
    std::vector<float> bias(static_cast<size_t>(rows));
    int64_t at = 0;
    for (const model::TensorEntry* b : source.biases) {
      MOE_RETURN_IF_ERROR(ConvertToF32(*b, bias.data() + at));
      at += b->NumElements();
    }
    MOE_ASSIGN_OR_RETURN(packed->bias_storage,
                         DeviceAllocation::Create(bias.size() * sizeof(float), "a bias"));
    MOE_RETURN_IF_ERROR(
        Upload(packed->bias_storage.get(), bias.data(), bias.size() * sizeof(float), "PackLinear"));
  }
  packed->out_features = rows;
  packed->in_features = cols;
  packed->has_bias = !source.biases.empty();
  packed->packed_bytes = packed->storage.size() + packed->bias_storage.size();
  return packed;
}

StatusOr<std::unique_ptr<CudaExperts>> PackCudaExperts(const engine::ExpertsSource& source) {
  MOE_ASSIGN_OR_RETURN(const engine::ExpertsShape shape, engine::CheckExpertsSource(source));
  const size_t num_experts = static_cast<size_t>(shape.num_experts);
  const int64_t f = shape.intermediate;
  const int64_t h = shape.hidden;
  if (f % kGateUpInterleave != 0) {
    return InvalidArgument(
        "PackExperts: the CUDA backend needs the expert intermediate size to "
        "be a multiple of ",
        kGateUpInterleave, "; '", source.gate[0]->name, "' has ", f, " rows");
  }
  const size_t matrix = static_cast<size_t>(f * h);
  auto packed = std::make_unique<CudaExperts>();
  MOE_ASSIGN_OR_RETURN(
      packed->gate_up_storage,
      DeviceAllocation::Create(2 * matrix * num_experts * sizeof(Bf16), "expert gate+up weights"));
  MOE_ASSIGN_OR_RETURN(
      packed->down_storage,
      DeviceAllocation::Create(matrix * num_experts * sizeof(Bf16), "expert down weights"));
  std::vector<Bf16> gate(matrix), up(matrix), gate_up(2 * matrix), down(matrix);
  for (size_t e = 0; e < num_experts; ++e) {
    MOE_RETURN_IF_ERROR(ConvertToBf16(*source.gate[e], gate.data()));
    MOE_RETURN_IF_ERROR(ConvertToBf16(*source.up[e], up.data()));
    PackGateUpWeights(gate.data(), up.data(), f, h, gate_up.data());
    MOE_RETURN_IF_ERROR(Upload(packed->gate_up_storage.as<Bf16>() + e * 2 * matrix, gate_up.data(),
                               2 * matrix * sizeof(Bf16), "PackExperts"));
    MOE_RETURN_IF_ERROR(ConvertToBf16(*source.down[e], down.data()));
    MOE_RETURN_IF_ERROR(Upload(packed->down_storage.as<Bf16>() + e * matrix, down.data(),
                               matrix * sizeof(Bf16), "PackExperts"));
  }
  packed->num_experts = static_cast<int>(num_experts);
  packed->hidden = h;
  packed->intermediate = f;
  packed->packed_bytes = packed->gate_up_storage.size() + packed->down_storage.size();
  return packed;
}

StatusOr<std::unique_ptr<CudaEmbedding>> PackCudaEmbedding(const model::TensorEntry& table) {
  if (table.shape.size() != 2) {
    return InvalidArgument(table.file, ": embedding '", table.name, "' must be 2-D, has shape ",
                           table.ShapeString());
  }
  MOE_RETURN_IF_ERROR(CheckFloat(table));
  auto packed = std::make_unique<CudaEmbedding>();
  const size_t n = static_cast<size_t>(table.NumElements());
  MOE_ASSIGN_OR_RETURN(packed->storage, DeviceAllocation::Create(n * sizeof(Bf16), table.name));
  std::vector<Bf16> staging(n);
  MOE_RETURN_IF_ERROR(ConvertToBf16(table, staging.data()));
  MOE_RETURN_IF_ERROR(
      Upload(packed->storage.get(), staging.data(), n * sizeof(Bf16), "PackEmbedding"));
  packed->vocab = table.shape[0];
  packed->hidden = table.shape[1];
  packed->packed_bytes = packed->storage.size();
  return packed;
}

StatusOr<std::unique_ptr<CudaBuffer>> UploadF32Vector(const model::TensorEntry& vector) {
  const size_t n = static_cast<size_t>(vector.NumElements());
  std::vector<float> staging(n);
  MOE_RETURN_IF_ERROR(ConvertToF32(vector, staging.data()));
  MOE_ASSIGN_OR_RETURN(
      DeviceAllocation memory,
      DeviceAllocation::Create(std::max<size_t>(n, 1) * sizeof(float), vector.name));
  MOE_RETURN_IF_ERROR(Upload(memory.get(), staging.data(), n * sizeof(float), "UploadF32"));
  return std::make_unique<CudaBuffer>(std::move(memory));
}

}  // namespace moe::cuda
