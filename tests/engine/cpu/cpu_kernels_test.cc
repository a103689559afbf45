// The GEMM-backed ops of the optimized CPU backend (Linear, GroupedGemmSwiGlu, GroupedGemm) on
// every ISA path against the naive reference, over a table of shapes with edge cases.
#include <numeric>

#include "tests/engine/cpu/cpu_test_util.h"

namespace moe::engine::cpu::testing {
namespace {

struct LinearShape {
  int t;
  int k;
  int n;
  bool bias;
  bool strided;  // x and out are column windows of wider matrices
};

const LinearShape kLinearShapes[] = {
    {0, 64, 64, false, false},   {1, 64, 64, false, false}, {1, 33, 70, true, false},
    {3, 17, 1, false, false},    {5, 257, 130, true, true}, {7, 1024, 96, false, false},
    {64, 128, 192, false, true}, {69, 96, 64, true, false}, {130, 64, 65, false, false},
};

class CpuKernelsTest : public ::testing::TestWithParam<CpuIsa> {
 protected:
  std::mt19937 rng_{1234};
};

TEST_P(CpuKernelsTest, LinearMatchesReference) {
  const CpuIsa isa = GetParam();
  auto cpu = MakeCpuBackend(isa, 2);
  ReferenceBackend ref(1);
  for (const LinearShape& s : kLinearShapes) {
    for (DType wdt : {DType::kBF16, DType::kF32, DType::kF16}) {
      FakeTensor w("w", wdt, s.n, s.k, rng_, 0.05f);
      FakeTensor bias("b", wdt, s.n, rng_, 0.5f);
      LinearSource source{{&w.entry}, {}};
      if (s.bias) source.biases = {&bias.entry};
      auto packed_cpu = cpu->PackLinear(source);
      auto packed_ref = ref.PackLinear(source);
      ASSERT_TRUE(packed_cpu.ok()) << packed_cpu.status().message();
      ASSERT_TRUE(packed_ref.ok());
      for (DType act : {DType::kF32, DType::kBF16}) {
        for (DType out_dtype : {act, DType::kF32}) {
          const int pad = s.strided ? 3 : 0;
          HostMatrix x(act, s.t, s.k + pad);
          x.Randomize(rng_);
          HostMatrix got(out_dtype, s.t, s.n + pad), want(out_dtype, s.t, s.n + pad);
          const TensorView xv = x.view.ColRange(pad, s.k);
          ASSERT_TRUE(
              cpu->Linear(LinearArgs{xv, packed_cpu->get(), got.view.ColRange(0, s.n)}, {}).ok());
          ASSERT_TRUE(
              ref.Linear(LinearArgs{xv, packed_ref->get(), want.view.ColRange(0, s.n)}, {}).ok());
          SCOPED_TRACE(::testing::Message()
                       << "t=" << s.t << " k=" << s.k << " n=" << s.n << " w=" << DTypeName(wdt)
                       << " act=" << DTypeName(act) << " out=" << DTypeName(out_dtype));
          if (isa == CpuIsa::kScalar) {
            for (int r = 0; r < s.t; ++r) EXPECT_TRUE(BitEqualRows(got.view, r, want.view, r));
          } else {
            EXPECT_TRUE(Near(got, want, s.t, ToleranceFor(out_dtype, isa)));
          }
        }
      }
    }
  }
}

struct GroupedShape {
  int hidden;
  int intermediate;
  std::vector<int> counts;  // rows per expert
};

const GroupedShape kGroupedShapes[] = {
    {64, 32, {0, 0, 0}},                    // 0 rows
    {64, 32, {1}},                          // one expert, one row
    {33, 50, {0, 3, 0, 1, 2}},              // odd sizes, experts without rows
    {256, 256, {5, 0, 70, 1, 0, 0, 9, 2}},  // a chunk boundary (64) inside an expert
    {1024, 768, {1, 0, 2, 1}},              // Qwen3-30B-A3B widths
    {96, 40, {130}},
};

TEST_P(CpuKernelsTest, GroupedGemmsMatchReference) {
  const CpuIsa isa = GetParam();
  auto cpu = MakeCpuBackend(isa, 2);
  ReferenceBackend ref(1);
  for (const GroupedShape& s : kGroupedShapes) {
    const int e_count = static_cast<int>(s.counts.size());
    for (DType wdt : {DType::kBF16, DType::kF32, DType::kF16}) {
      std::vector<std::unique_ptr<FakeTensor>> tensors;
      ExpertsSource source;
      for (int e = 0; e < e_count; ++e) {
        tensors.push_back(
            std::make_unique<FakeTensor>("g", wdt, s.intermediate, s.hidden, rng_, 0.08f));
        source.gate.push_back(&tensors.back()->entry);
        tensors.push_back(
            std::make_unique<FakeTensor>("u", wdt, s.intermediate, s.hidden, rng_, 0.08f));
        source.up.push_back(&tensors.back()->entry);
        tensors.push_back(
            std::make_unique<FakeTensor>("d", wdt, s.hidden, s.intermediate, rng_, 0.08f));
        source.down.push_back(&tensors.back()->entry);
      }
      auto packed_cpu = cpu->PackExperts(source);
      auto packed_ref = ref.PackExperts(source);
      ASSERT_TRUE(packed_cpu.ok()) << packed_cpu.status().message();
      ASSERT_TRUE(packed_ref.ok());
      std::vector<int32_t> offsets(e_count + 1, 0);
      for (int e = 0; e < e_count; ++e) offsets[e + 1] = offsets[e] + s.counts[e];
      const int total = offsets[e_count];
      for (DType act : {DType::kF32, DType::kBF16}) {
        SCOPED_TRACE(::testing::Message()
                     << "h=" << s.hidden << " f=" << s.intermediate << " rows=" << total
                     << " w=" << DTypeName(wdt) << " act=" << DTypeName(act));
        HostMatrix rows(act, total, s.hidden);
        rows.Randomize(rng_);
        HostMatrix h_got(act, total, s.intermediate), h_want(act, total, s.intermediate);
        ASSERT_TRUE(cpu->GroupedGemmSwiGlu(GroupedGemmSwiGluArgs{rows.view, offsets.data(),
                                                                 packed_cpu->get(), h_got.view},
                                           {})
                        .ok());
        ASSERT_TRUE(ref.GroupedGemmSwiGlu(GroupedGemmSwiGluArgs{rows.view, offsets.data(),
                                                                packed_ref->get(), h_want.view},
                                          {})
                        .ok());
        // Down projection from the same input (the reference's h) so errors do not compound.
        HostMatrix y_got(act, total, s.hidden), y_want(act, total, s.hidden);
        ASSERT_TRUE(
            cpu->GroupedGemm(
                   GroupedGemmArgs{h_want.view, offsets.data(), packed_cpu->get(), y_got.view}, {})
                .ok());
        ASSERT_TRUE(
            ref.GroupedGemm(
                   GroupedGemmArgs{h_want.view, offsets.data(), packed_ref->get(), y_want.view}, {})
                .ok());
        if (isa == CpuIsa::kScalar) {
          for (int r = 0; r < total; ++r) {
            EXPECT_TRUE(BitEqualRows(h_got.view, r, h_want.view, r));
            EXPECT_TRUE(BitEqualRows(y_got.view, r, y_want.view, r));
          }
        } else {
          EXPECT_TRUE(Near(h_got, h_want, total, ToleranceFor(act, isa)));
          EXPECT_TRUE(Near(y_got, y_want, total, ToleranceFor(act, isa)));
        }
      }
    }
  }
}

TEST_P(CpuKernelsTest, SiluMulMatchesReference) {
  const CpuIsa isa = GetParam();
  auto cpu = MakeCpuBackend(isa, 2);
  ReferenceBackend ref(1);
  for (int t : {0, 1, 40}) {
    for (int f : {1, 17, 96}) {
      for (DType act : {DType::kF32, DType::kBF16}) {
        HostMatrix x(act, t, 2 * f);
        x.Randomize(rng_, 3.f);
        if (t > 0) {
          x.Set(0, 0, -120.f);  // exp overflow
          x.Set(0, f - 1 + f, 5.f);
        }
        HostMatrix got(act, t, f), want(act, t, f);
        ASSERT_TRUE(cpu->SiluMul(SiluMulArgs{x.view, got.view}, {}).ok());
        ASSERT_TRUE(ref.SiluMul(SiluMulArgs{x.view, want.view}, {}).ok());
        if (isa == CpuIsa::kScalar) {
          for (int r = 0; r < t; ++r) EXPECT_TRUE(BitEqualRows(got.view, r, want.view, r));
        } else {
          EXPECT_TRUE(Near(got, want, t, ToleranceFor(act, isa)));
        }
      }
    }
  }
}

TEST_P(CpuKernelsTest, PackedBytesAreReported) {
  auto cpu = MakeCpuBackend(GetParam(), 1);
  FakeTensor w("w", DType::kBF16, 100, 64, rng_, 0.1f);
  auto packed = cpu->PackLinear(LinearSource{{&w.entry}, {}});
  ASSERT_TRUE(packed.ok());
  // 100 rows -> 2 blocks of 64 columns x 32 k pairs x 4 bytes.
  EXPECT_EQ((*packed)->packed_bytes, 2u * 64 * 32 * 4);
  EXPECT_EQ((*packed)->out_features, 100);
  EXPECT_EQ((*packed)->in_features, 64);
}

INSTANTIATE_TEST_SUITE_P(Isas, CpuKernelsTest, ::testing::ValuesIn(SupportedIsas()),
                         [](const auto& info) { return IsaParamName(info.param); });

}  // namespace
}  // namespace moe::engine::cpu::testing
