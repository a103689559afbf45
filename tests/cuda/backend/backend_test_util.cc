#include "tests/cuda/backend/backend_test_util.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <thread>

#include "core/bf16.h"

namespace moe::cuda::testing {

engine::BackendLimits OpTestLimits() {
  engine::BackendLimits limits;
  limits.max_tokens = 512;
  limits.max_seqs = 64;
  limits.max_context = 4096;
  limits.num_heads = 32;
  limits.num_kv_heads = 16;
  limits.head_dim = 256;
  limits.hidden = 4096;
  limits.num_experts = 128;
  limits.top_k = 8;
  limits.max_intermediate = 1024;
  return limits;
}

BackendPair BackendPair::Make(const CudaBackendOptions& options,
                              const engine::BackendLimits& limits,
                              std::shared_ptr<engine::cpu::ReferenceBackend> ref) {
  BackendPair pair;
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  pair.ref =
      ref != nullptr ? std::move(ref) : std::make_shared<engine::cpu::ReferenceBackend>(threads);
  auto gpu = CudaBackend::Create(options);
  MOE_CHECK(gpu.ok()) << gpu.status().message();
  pair.gpu = std::move(gpu).value();
  MOE_CHECK(pair.ref->Reserve(limits).ok());
  const Status s = pair.gpu->Reserve(limits);
  MOE_CHECK(s.ok()) << s.message();
  return pair;
}

float RoundTo(DType dtype, float v) { return dtype == DType::kBF16 ? RoundToBf16(v) : v; }

std::string DTypeLabel(DType dtype) { return dtype == DType::kBF16 ? "BF16" : "F32"; }

MirroredMatrix::MirroredMatrix(BackendPair& pair, DType dtype, int64_t rows, int64_t cols)
    : pair_(&pair), dtype_(dtype), rows_(rows), cols_(cols) {
  const size_t bytes = std::max<size_t>(static_cast<size_t>(rows * cols) * DTypeSize(dtype), 16);
  ref_buf_ = std::move(pair.ref->Allocate(bytes)).value();
  gpu_buf_ = std::move(pair.gpu->Allocate(bytes)).value();
  ref_view_ = TensorView::Contiguous(ref_buf_->data(), dtype, rows, cols);
  gpu_view_ = TensorView::Contiguous(gpu_buf_->data(), dtype, rows, cols);
}

void MirroredMatrix::Set(const std::vector<float>& values) {
  MOE_CHECK_EQ(static_cast<int64_t>(values.size()), rows_ * cols_);
  const size_t n = values.size();
  std::vector<uint8_t> raw(std::max<size_t>(n * DTypeSize(dtype_), 1));
  if (dtype_ == DType::kBF16) {
    auto* out = reinterpret_cast<uint16_t*>(raw.data());
    for (size_t i = 0; i < n; ++i) out[i] = FloatToBf16Bits(values[i]);
  } else {
    std::memcpy(raw.data(), values.data(), n * 4);
  }
  if (n == 0) return;
  std::memcpy(ref_buf_->data(), raw.data(), n * DTypeSize(dtype_));
  MOE_CHECK(
      pair_->gpu
          ->CopyToDevice(gpu_buf_->data(), raw.data(), n * DTypeSize(dtype_), engine::Stream{})
          .ok());
  MOE_CHECK(pair_->gpu->Synchronize(engine::Stream{}).ok());
}

std::vector<float> MirroredMatrix::Randomize(float scale, uint64_t seed) {
  std::vector<float> v = RandomF32(static_cast<size_t>(rows_ * cols_), scale, seed);
  for (float& x : v) x = RoundTo(dtype_, x);
  Set(v);
  return v;
}

namespace {

std::vector<float> Decode(const void* data, DType dtype, size_t n) {
  std::vector<float> out(n);
  if (dtype == DType::kBF16) {
    const auto* in = static_cast<const uint16_t*>(data);
    for (size_t i = 0; i < n; ++i) out[i] = Bf16BitsToFloat(in[i]);
  } else {
    std::memcpy(out.data(), data, n * 4);
  }
  return out;
}

}  // namespace

std::vector<float> MirroredMatrix::ReadRef() const {
  return Decode(ref_buf_->data(), dtype_, static_cast<size_t>(rows_ * cols_));
}

std::vector<float> MirroredMatrix::ReadGpu() const {
  const size_t n = static_cast<size_t>(rows_ * cols_);
  std::vector<uint8_t> raw(std::max<size_t>(n * DTypeSize(dtype_), 1));
  if (n > 0) {
    const Status s = pair_->gpu->CopyToHost(raw.data(), gpu_buf_->data(), n * DTypeSize(dtype_),
                                            engine::Stream{});
    MOE_CHECK(s.ok()) << s.message();
  }
  return Decode(raw.data(), dtype_, n);
}

FakeTensor::FakeTensor(const std::string& name, std::vector<int64_t> shape, float scale,
                       uint64_t seed) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  const std::vector<float> values = RandomF32(static_cast<size_t>(n), scale, seed);
  bits.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) bits[i] = FloatToBf16Bits(values[i]);
  entry.name = name;
  entry.dtype = DType::kBF16;
  entry.shape = std::move(shape);
  entry.data = bits.data();
  entry.num_bytes = bits.size() * 2;
  entry.file = "fake.safetensors";
}

::testing::AssertionResult Near(const std::vector<float>& got, const std::vector<float>& want,
                                Tolerance tol, const std::string& what) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure()
           << what << ": " << got.size() << " values, " << want.size() << " expected";
  }
  double max_abs = 0;
  for (float w : want) max_abs = std::max(max_abs, std::fabs(static_cast<double>(w)));
  const double atol = tol.atol_frac * max_abs;
  size_t failures = 0, worst = 0;
  double worst_excess = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    const double allowed = atol + tol.rtol * std::fabs(static_cast<double>(want[i]));
    if (!(err <= allowed)) {
      ++failures;
      const double excess = std::isnan(err) ? 1e300 : err / std::max(allowed, 1e-30);
      if (excess > worst_excess) {
        worst_excess = excess;
        worst = i;
      }
    }
  }
  if (failures == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": " << failures << " of " << got.size() << " values outside rtol " << tol.rtol
         << " + atol " << atol << " (max |want| " << max_abs << "); worst at " << worst << ": got "
         << got[worst] << ", want " << want[worst];
}

::testing::AssertionResult BitEqual(const std::vector<float>& got, const std::vector<float>& want,
                                    const std::string& what) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure()
           << what << ": " << got.size() << " values, " << want.size() << " expected";
  }
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], 4) != 0) {
      return ::testing::AssertionFailure()
             << what << ": first difference at " << i << ": " << got[i] << " vs " << want[i];
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace moe::cuda::testing
