// Fixtures for the CudaBackend tests: a reference/CUDA backend pair, tensors mirrored into both
// with identical contents, fabricated checkpoint tensors, and per-dtype comparisons. Every test
// that touches the GPU starts with MOE_SKIP_IF_NO_GPU() (tests/cuda/cuda_test_util.h).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor_view.h"
#include "cuda/backend/cuda_backend.h"
#include "engine/backend.h"
#include "engine/cpu/reference_backend.h"
#include "model/safetensors.h"
#include "tests/cuda/cuda_test_util.h"

namespace moe::cuda::testing {

// Limits large enough for every op case of the shape tables.
engine::BackendLimits OpTestLimits();

struct BackendPair {
  std::shared_ptr<engine::cpu::ReferenceBackend> ref;
  std::unique_ptr<CudaBackend> gpu;

  // Creates and Reserve()s both (aborts the test binary on failure: call after the skip check).
  // `ref` may be shared with another pair (all CUDA backends of the process share the device's
  // memory, so data set through one pair is visible to every pair's GPU ops).
  static BackendPair Make(const CudaBackendOptions& options = {},
                          const engine::BackendLimits& limits = OpTestLimits(),
                          std::shared_ptr<engine::cpu::ReferenceBackend> ref = nullptr);
};

// A float matrix with the same contents in the reference backend (host) and the CUDA backend.
class MirroredMatrix {
 public:
  MirroredMatrix(BackendPair& pair, DType dtype, int64_t rows, int64_t cols);
  // Row-major [rows, cols] values, rounded to the dtype, written to both (and synchronised, so
  // any backend's stream sees them).
  void Set(const std::vector<float>& values);
  // Random uniform [-scale, scale) values; returns them (rounded to the dtype).
  std::vector<float> Randomize(float scale, uint64_t seed);
  TensorView ref() const { return ref_view_; }
  TensorView gpu() const { return gpu_view_; }
  std::vector<float> ReadRef() const;
  std::vector<float> ReadGpu() const;
  DType dtype() const { return dtype_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }

 private:
  BackendPair* pair_;
  DType dtype_;
  int64_t rows_, cols_;
  std::unique_ptr<engine::Buffer> ref_buf_, gpu_buf_;
  TensorView ref_view_, gpu_view_;
};

// A raw array (int32 / int64 / float) in both backends.
template <typename T>
class MirroredArray {
 public:
  MirroredArray(BackendPair& pair, size_t count) : pair_(&pair), count_(count) {
    const size_t bytes = std::max<size_t>(count, 1) * sizeof(T);
    ref_buf_ = std::move(pair.ref->Allocate(bytes)).value();
    gpu_buf_ = std::move(pair.gpu->Allocate(bytes)).value();
  }
  void Set(const std::vector<T>& values) {
    MOE_CHECK_LE(values.size(), count_);
    if (values.empty()) return;
    std::memcpy(ref_buf_->data(), values.data(), values.size() * sizeof(T));
    MOE_CHECK(pair_->gpu
                  ->CopyToDevice(gpu_buf_->data(), values.data(), values.size() * sizeof(T),
                                 engine::Stream{})
                  .ok());
    MOE_CHECK(pair_->gpu->Synchronize(engine::Stream{}).ok());
  }
  T* ref() const { return ref_buf_->as<T>(); }
  T* gpu() const { return gpu_buf_->as<T>(); }
  std::vector<T> ReadRef(size_t n) const { return std::vector<T>(ref(), ref() + n); }
  std::vector<T> ReadGpu(size_t n) const {
    std::vector<T> out(n);
    if (n > 0) {
      MOE_CHECK(pair_->gpu->CopyToHost(out.data(), gpu(), n * sizeof(T), engine::Stream{}).ok());
    }
    return out;
  }

 private:
  BackendPair* pair_;
  size_t count_;
  std::unique_ptr<engine::Buffer> ref_buf_, gpu_buf_;
};

// A fabricated checkpoint tensor with bf16 contents.
struct FakeTensor {
  std::vector<uint16_t> bits;
  model::TensorEntry entry;

  FakeTensor(const std::string& name, std::vector<int64_t> shape, float scale, uint64_t seed);
  FakeTensor(const FakeTensor&) = delete;
  FakeTensor& operator=(const FakeTensor&) = delete;
};

// |got - want| <= atol_frac * max|want| + rtol * |want| for every element.
struct Tolerance {
  double rtol = 0;
  double atol_frac = 0;
};

::testing::AssertionResult Near(const std::vector<float>& got, const std::vector<float>& want,
                                Tolerance tol, const std::string& what);
::testing::AssertionResult BitEqual(const std::vector<float>& got, const std::vector<float>& want,
                                    const std::string& what);

// Rounds to the dtype's precision (identity for F32).
float RoundTo(DType dtype, float v);
std::string DTypeLabel(DType dtype);

}  // namespace moe::cuda::testing
