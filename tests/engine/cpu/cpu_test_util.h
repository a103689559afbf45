// Shared fixtures for the optimized CPU backend tests: host tensors with random contents,
// fabricated checkpoint tensors for packing, backends per ISA path, and comparisons with
// per-dtype tolerances.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/aligned_buffer.h"
#include "core/tensor_view.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/reference_backend.h"
#include "model/safetensors.h"

namespace moe::engine::cpu::testing {

// A host matrix in some dtype.
struct HostMatrix {
  AlignedBuffer storage;
  TensorView view;

  HostMatrix() = default;
  HostMatrix(DType dtype, int64_t rows, int64_t cols);
  float Get(int64_t r, int64_t c) const;
  void Set(int64_t r, int64_t c, float v);
  // Fills with N(0, stddev) values (rounded to the dtype).
  void Randomize(std::mt19937& rng, float stddev = 1.f);
  // Copies from another matrix (same shape; values converted).
  void CopyFrom(const HostMatrix& other);
  void Zero();
};

// A fabricated checkpoint tensor backed by a HostMatrix (2-D) or a vector (1-D).
struct FakeTensor {
  HostMatrix matrix;
  model::TensorEntry entry;

  FakeTensor(const std::string& name, DType dtype, int64_t rows, int64_t cols, std::mt19937& rng,
             float stddev);
  // 1-D [n].
  FakeTensor(const std::string& name, DType dtype, int64_t n, std::mt19937& rng, float stddev);
};

// The ISA paths this CPU can run (always includes kScalar).
std::vector<CpuIsa> SupportedIsas();
std::string IsaParamName(CpuIsa isa);

std::unique_ptr<CpuBackend> MakeCpuBackend(CpuIsa isa, int threads);

// Tolerance for comparing an op's output in `dtype` with the reference's: |got - want| <= atol
// + rtol * |want|, with atol relative to the largest |want| in the row.
struct Tolerance {
  float rtol = 0.f;
  float atol_frac = 0.f;  // of max |want| in the row
};
Tolerance ToleranceFor(DType out_dtype, CpuIsa isa);

// Compares rows [0, rows) of two matrices; reports the first few mismatches.
::testing::AssertionResult Near(const HostMatrix& got, const HostMatrix& want, int64_t rows,
                                Tolerance tol);
::testing::AssertionResult BitEqualRows(const TensorView& a, int64_t row_a, const TensorView& b,
                                        int64_t row_b);

BackendLimits DefaultLimits();

}  // namespace moe::engine::cpu::testing
