// Device memory of the CUDA backend and its packed weights. Weights live on the device as bf16
// whatever the checkpoint's float type (F32 / F16 are rounded to nearest even at load):
// - CudaLinear: [out_features, in_features] row-major (the LinearSource row blocks in order), an
//   optional f32 bias; read by cuBLAS (column-major W^T) and by the fixed-order GEMM.
// - CudaExperts: gate+up [E, 2F, H] interleaved in groups of 8 features (PackGateUpWeights,
//   moe_index_math.h), down [E, H, F] as in the checkpoint; one layout serves the mma.sync
//   kernel, the cuBLAS grouped baseline and the fixed-order GEMM.
// - CudaEmbedding: [vocab, H].
// Packing runs at load time on the calling thread and synchronises; nothing here is in the step
// path. Host-only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "core/bf16.h"
#include "core/status.h"
#include "engine/backend.h"
#include "model/safetensors.h"

namespace moe::cuda {

// cudaMalloc'd bytes on the current device, freed on destruction. Move-only.
class DeviceAllocation {
 public:
  DeviceAllocation() = default;
  // `what` names the allocation in the out-of-memory error.
  static StatusOr<DeviceAllocation> Create(size_t bytes, std::string_view what);
  ~DeviceAllocation();
  DeviceAllocation(DeviceAllocation&& other) noexcept;
  DeviceAllocation& operator=(DeviceAllocation&& other) noexcept;
  DeviceAllocation(const DeviceAllocation&) = delete;
  DeviceAllocation& operator=(const DeviceAllocation&) = delete;

  void* get() const { return ptr_; }
  size_t size() const { return size_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
  size_t size_ = 0;
};

class CudaBuffer final : public engine::Buffer {
 public:
  explicit CudaBuffer(DeviceAllocation memory) : memory_(std::move(memory)) {}
  void* data() const override { return memory_.get(); }
  size_t size() const override { return memory_.size(); }

 private:
  DeviceAllocation memory_;
};

class CudaLinear final : public engine::PackedLinear {
 public:
  const Bf16* weights() const { return storage.as<Bf16>(); }                           // [out, in]
  const float* bias() const { return has_bias ? bias_storage.as<float>() : nullptr; }  // [out]

  DeviceAllocation storage;
  DeviceAllocation bias_storage;
};

class CudaExperts final : public engine::PackedExperts {
 public:
  const Bf16* gate_up() const { return gate_up_storage.as<Bf16>(); }  // [E, 2F, H] interleaved
  const Bf16* down() const { return down_storage.as<Bf16>(); }        // [E, H, F]

  DeviceAllocation gate_up_storage;
  DeviceAllocation down_storage;
};

class CudaEmbedding final : public engine::PackedEmbedding {
 public:
  const Bf16* table() const { return storage.as<Bf16>(); }  // [vocab, H]

  DeviceAllocation storage;
};

// Host conversion of a checkpoint tensor of F32, BF16 or F16 to bf16 / f32 (nearest even).
// `out` holds t.NumElements() values. InvalidArgument for other dtypes.
Status ConvertToBf16(const model::TensorEntry& t, Bf16* out);
Status ConvertToF32(const model::TensorEntry& t, float* out);

StatusOr<std::unique_ptr<CudaLinear>> PackCudaLinear(const engine::LinearSource& source);
// Requires F % 8 == 0 (the gate/up interleave).
StatusOr<std::unique_ptr<CudaExperts>> PackCudaExperts(const engine::ExpertsSource& source);
StatusOr<std::unique_ptr<CudaEmbedding>> PackCudaEmbedding(const model::TensorEntry& table);
// A 1-D tensor as f32 on the device.
StatusOr<std::unique_ptr<CudaBuffer>> UploadF32Vector(const model::TensorEntry& vector);

}  // namespace moe::cuda
