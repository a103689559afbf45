// Helpers for the GPU kernel tests: skipping without a device, RAII device buffers, random bf16
// data and tolerance checks. Host-only (links CUDA::cudart; runs without a GPU).
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/bf16.h"
#include "core/check.h"

namespace moe::cuda::testing {

// True when the CUDA runtime finds at least one device (false without a driver or GPU).
inline bool HaveCudaDevice() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return false;
  }
  return count > 0;
}

// Skips the current test cleanly on machines without a GPU (DESIGN.md §8).
#define MOE_SKIP_IF_NO_GPU()                              \
  do {                                                    \
    if (!::moe::cuda::testing::HaveCudaDevice()) {        \
      GTEST_SKIP() << "no CUDA device: GPU test skipped"; \
    }                                                     \
  } while (0)

// Owns `count` elements of T in device memory (at least one byte, so pointers are never null).
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) { Resize(count); }
  explicit DeviceBuffer(const std::vector<T>& host) {
    Resize(host.size());
    Upload(host);
  }
  ~DeviceBuffer() { Release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void Resize(size_t count) {
    Release();
    count_ = count;
    MOE_CUDA_CHECK(
        cudaMalloc(reinterpret_cast<void**>(&data_), std::max<size_t>(count, 1) * sizeof(T)));
  }
  void Upload(const std::vector<T>& host) {
    MOE_CHECK_LE(host.size(), count_);
    if (!host.empty()) {
      MOE_CUDA_CHECK(
          cudaMemcpy(data_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
    }
  }
  // Fills every byte with `byte` (e.g. 0xff: bf16 NaN / int32 -1 sentinels).
  void FillBytes(int byte) {
    MOE_CUDA_CHECK(cudaMemset(data_, byte, std::max<size_t>(count_, 1) * sizeof(T)));
  }
  std::vector<T> Download() const {
    std::vector<T> host(count_);
    if (count_ > 0) {
      MOE_CUDA_CHECK(cudaMemcpy(host.data(), data_, count_ * sizeof(T), cudaMemcpyDeviceToHost));
    }
    return host;
  }
  T* get() const { return data_; }
  size_t size() const { return count_; }

 private:
  void Release() {
    if (data_ != nullptr) cudaFree(data_);
    data_ = nullptr;
    count_ = 0;
  }
  T* data_ = nullptr;
  size_t count_ = 0;
};

// Fast deterministic generator (splitmix64) for large random tensors.
class FastRandom {
 public:
  explicit FastRandom(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [-1, 1).
  float Uniform() { return static_cast<float>(Next() >> 40) * (2.f / 16777216.f) - 1.f; }

 private:
  uint64_t state_;
};

inline std::vector<Bf16> RandomBf16(size_t count, float scale, uint64_t seed) {
  FastRandom rng(seed);
  std::vector<Bf16> v(count);
  for (Bf16& x : v) x = ToBf16(scale * rng.Uniform());
  return v;
}

inline std::vector<float> RandomF32(size_t count, float scale, uint64_t seed) {
  FastRandom rng(seed);
  std::vector<float> v(count);
  for (float& x : v) x = scale * rng.Uniform();
  return v;
}

// |got - want| <= atol + rtol |want| for every element; reports the worst element.
template <typename Getter>
::testing::AssertionResult AllClose(int64_t count, Getter get, double atol, double rtol,
                                    const std::string& what) {
  double worst = 0;
  int64_t worst_index = -1;
  int64_t failures = 0;
  double worst_got = 0, worst_want = 0;
  for (int64_t i = 0; i < count; ++i) {
    const auto [got, want] = get(i);
    const double err = std::fabs(static_cast<double>(got) - static_cast<double>(want));
    const double allowed = atol + rtol * std::fabs(static_cast<double>(want));
    const bool bad = !(err <= allowed);  // NaN fails
    if (bad) ++failures;
    const double excess = bad ? (std::isnan(err) ? 1e300 : err / allowed) : 0.0;
    if (excess > worst) {
      worst = excess;
      worst_index = i;
      worst_got = got;
      worst_want = want;
    }
  }
  if (failures == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": " << failures << " of " << count << " elements outside atol " << atol
         << " + rtol " << rtol << "; worst index " << worst_index << " got " << worst_got
         << " want " << worst_want;
}

}  // namespace moe::cuda::testing
