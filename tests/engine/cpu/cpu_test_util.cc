#include "tests/engine/cpu/cpu_test_util.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "core/bf16.h"
#include "engine/cpu/element.h"

namespace moe::engine::cpu::testing {

HostMatrix::HostMatrix(DType dtype, int64_t rows, int64_t cols)
    : storage(std::max<size_t>(static_cast<size_t>(rows * cols) * DTypeSize(dtype), 64)),
      view(TensorView::Contiguous(storage.data(), dtype, rows, cols)) {
  storage.Zero();
}

float HostMatrix::Get(int64_t r, int64_t c) const {
  return DispatchFloat(view.dtype, [&](auto tag) {
    using T = decltype(tag);
    return Load(view.RowAs<T>(r) + c);
  });
}

void HostMatrix::Set(int64_t r, int64_t c, float v) {
  DispatchFloat(view.dtype, [&](auto tag) {
    using T = decltype(tag);
    Store(view.RowAs<T>(r) + c, v);
  });
}

void HostMatrix::Randomize(std::mt19937& rng, float stddev) {
  std::normal_distribution<float> dist(0.f, stddev);
  for (int64_t r = 0; r < view.rows; ++r) {
    for (int64_t c = 0; c < view.cols; ++c) Set(r, c, dist(rng));
  }
}

void HostMatrix::CopyFrom(const HostMatrix& other) {
  for (int64_t r = 0; r < view.rows; ++r) {
    for (int64_t c = 0; c < view.cols; ++c) Set(r, c, other.Get(r, c));
  }
}

void HostMatrix::Zero() { storage.Zero(); }

FakeTensor::FakeTensor(const std::string& name, DType dtype, int64_t rows, int64_t cols,
                       std::mt19937& rng, float stddev)
    : matrix(dtype, rows, cols) {
  matrix.Randomize(rng, stddev);
  entry.name = name;
  entry.dtype = dtype;
  entry.shape = {rows, cols};
  entry.data = matrix.storage.data();
  entry.num_bytes = static_cast<size_t>(rows * cols) * DTypeSize(dtype);
  entry.file = "fake.safetensors";
}

FakeTensor::FakeTensor(const std::string& name, DType dtype, int64_t n, std::mt19937& rng,
                       float stddev)
    : matrix(dtype, 1, n) {
  matrix.Randomize(rng, stddev);
  entry.name = name;
  entry.dtype = dtype;
  entry.shape = {n};
  entry.data = matrix.storage.data();
  entry.num_bytes = static_cast<size_t>(n) * DTypeSize(dtype);
  entry.file = "fake.safetensors";
}

std::vector<CpuIsa> SupportedIsas() {
  std::vector<CpuIsa> isas;
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512Bf16}) {
    if (CpuSupports(isa)) isas.push_back(isa);
  }
  return isas;
}

std::string IsaParamName(CpuIsa isa) { return std::string(CpuIsaName(isa)); }

std::unique_ptr<CpuBackend> MakeCpuBackend(CpuIsa isa, int threads) {
  CpuBackendOptions options;
  options.isa = isa;
  options.num_threads = threads;
  auto backend = CpuBackend::Create(options);
  EXPECT_TRUE(backend.ok()) << backend.status().message();
  return std::move(backend).value();
}

Tolerance ToleranceFor(DType out_dtype, CpuIsa isa) {
  if (out_dtype == DType::kBF16) return Tolerance{1.0f / 64, 1.0f / 64};
  return Tolerance{2e-5f, 2e-5f};
}

::testing::AssertionResult Near(const HostMatrix& got, const HostMatrix& want, int64_t rows,
                                Tolerance tol) {
  std::ostringstream failures;
  int bad = 0;
  for (int64_t r = 0; r < rows; ++r) {
    float row_max = 0.f;
    for (int64_t c = 0; c < want.view.cols; ++c)
      row_max = std::max(row_max, std::fabs(want.Get(r, c)));
    for (int64_t c = 0; c < want.view.cols; ++c) {
      const float g = got.Get(r, c);
      const float w = want.Get(r, c);
      const float limit = tol.atol_frac * row_max + tol.rtol * std::fabs(w);
      if (!(std::fabs(g - w) <= limit) && !(std::isnan(g) && std::isnan(w))) {
        if (bad < 5) {
          failures << " (" << r << ", " << c << "): got " << g << " want " << w << " limit "
                   << limit << ";";
        }
        ++bad;
      }
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " elements differ:" << failures.str();
}

::testing::AssertionResult BitEqualRows(const TensorView& a, int64_t row_a, const TensorView& b,
                                        int64_t row_b) {
  if (a.dtype != b.dtype || a.cols != b.cols) {
    return ::testing::AssertionFailure() << "views differ in dtype or width";
  }
  if (std::memcmp(a.Row(row_a), b.Row(row_b), static_cast<size_t>(a.cols) * a.ElementSize()) == 0) {
    return ::testing::AssertionSuccess();
  }
  for (int64_t c = 0; c < a.cols; ++c) {
    if (std::memcmp(static_cast<const char*>(a.Row(row_a)) + c * a.ElementSize(),
                    static_cast<const char*>(b.Row(row_b)) + c * b.ElementSize(),
                    a.ElementSize()) != 0) {
      return ::testing::AssertionFailure()
             << "rows " << row_a << " and " << row_b << " first differ at column " << c;
    }
  }
  return ::testing::AssertionFailure() << "rows differ";
}

BackendLimits DefaultLimits() {
  BackendLimits l;
  l.max_tokens = 256;
  l.max_seqs = 64;
  l.max_context = 512;
  l.num_heads = 8;
  l.num_kv_heads = 2;
  l.head_dim = 64;
  l.hidden = 1024;
  l.num_experts = 64;
  l.top_k = 8;
  l.max_intermediate = 768;
  return l;
}

}  // namespace moe::engine::cpu::testing
