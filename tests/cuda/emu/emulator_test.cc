// The CUDA emulator (cuda/emu) against models written from the PTX ISA: warp shuffles, votes and
// match, block barriers, cp.async groups, ldmatrix and mma.sync fragments; and the misuse it must
// refuse (a launch past the shared-memory opt-in, a warp collective a lane never reaches).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "core/bf16.h"
#include "cuda/kernels/device_primitives.cuh"
#include "tests/cuda/cuda_test_util.h"

namespace moe::cuda {
namespace {

using testing::DeviceBuffer;

struct ShuffleOut {
  int* idx;   // [threads]
  int* up;    // [threads]
  int* down;  // [threads]
  int* xr;    // [threads]
  unsigned* ballot;
  unsigned* match;
};

__global__ void ShuffleKernel(ShuffleOut o, int width) {
  const int t = threadIdx.x;
  const int v = 1000 + t;
  o.idx[t] = __shfl_sync(0xffffffffu, v, 5, width);
  o.up[t] = __shfl_up_sync(0xffffffffu, v, 3, width);
  o.down[t] = __shfl_down_sync(0xffffffffu, v, 3, width);
  o.xr[t] = __shfl_xor_sync(0xffffffffu, v, 9, width);
  o.ballot[t] = __ballot_sync(0xffffffffu, t % 3 == 0);
  o.match[t] = __match_any_sync(0xffffffffu, t % 4);
}

TEST(CudaEmulatorTest, ShufflesFollowPtxSemanticsForEveryWidth) {
  const int threads = 64;
  for (int width : {32, 16, 8, 4}) {
    SCOPED_TRACE(width);
    DeviceBuffer<int> idx(threads), up(threads), down(threads), xr(threads);
    DeviceBuffer<unsigned> ballot(threads), match(threads);
    MOE_LAUNCH(1, threads, 0, nullptr, ShuffleKernel)
    (ShuffleOut{idx.get(), up.get(), down.get(), xr.get(), ballot.get(), match.get()}, width);
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
    const auto gi = idx.Download(), gu = up.Download(), gd = down.Download(), gx = xr.Download();
    const auto gb = ballot.Download(), gm = match.Download();
    for (int t = 0; t < threads; ++t) {
      const int lane = t % 32, seg = lane / width * width, pos = lane - seg, warp = t - lane;
      EXPECT_EQ(gi[t], 1000 + warp + seg + 5 % width) << t;
      EXPECT_EQ(gu[t], 1000 + (pos >= 3 ? t - 3 : t)) << t;
      EXPECT_EQ(gd[t], 1000 + (pos + 3 < width ? t + 3 : t)) << t;
      const int x = lane ^ 9;
      EXPECT_EQ(gx[t], 1000 + ((x / width == lane / width) ? warp + x : t)) << t;
      unsigned want_ballot = 0, want_match = 0;
      for (int l = 0; l < 32; ++l) {
        if ((warp + l) % 3 == 0) want_ballot |= 1u << l;
        if ((warp + l) % 4 == t % 4) want_match |= 1u << l;
      }
      EXPECT_EQ(gb[t], want_ballot) << t;
      EXPECT_EQ(gm[t], want_match) << t;
    }
  }
}

// Each thread writes its slot, the block syncs, each thread reads its neighbour's: correct only
// if no thread passes the barrier before every thread has written.
__global__ void BarrierKernel(int* out) {
  __shared__ int slots[256];
  const int t = threadIdx.x;
  slots[t] = t * 7;
  __syncthreads();
  out[t] = slots[(t + 1) % blockDim.x];
}

TEST(CudaEmulatorTest, BarrierOrdersSharedMemory) {
  DeviceBuffer<int> out(256);
  MOE_LAUNCH(1, 256, 0, nullptr, BarrierKernel)(out.get());
  const auto got = out.Download();
  for (int t = 0; t < 256; ++t) EXPECT_EQ(got[t], (t + 1) % 256 * 7);
}

// cp.async: a group lands at its commit or at the wait_group that retires it, never later.
__global__ void CpAsyncKernel(const uint32_t* src, uint32_t* before, uint32_t* pending1,
                              uint32_t* after) {
  MOE_DYNAMIC_SMEM(uint32_t, s);
  const int t = threadIdx.x;
  const uint32_t base = kernel::SmemAddress(s);
  kernel::CpAsync16(base + 32 * t, src + 8 * t, true);  // group 0: words 8t..8t+3
  kernel::CpAsyncCommit();
  kernel::CpAsync16(base + 32 * t + 16, src + 8 * t, false);  // group 1: zero fill
  kernel::CpAsyncCommit();
  before[t] = s[8 * t];
  kernel::CpAsyncWait<1>();  // group 0 landed; group 1 may have
  pending1[t] = s[8 * t];
  after[t] = s[8 * t + 4];
  kernel::CpAsyncWait<0>();
  after[t] = after[t] == 0 ? 1u : s[8 * t + 4];  // 1: landed before the wait, 0: at it
}

TEST(CudaEmulatorTest, CpAsyncLandsBetweenCommitAndWait) {
  const int threads = 128;
  std::vector<uint32_t> src(8 * threads);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint32_t>(i + 1);
  DeviceBuffer<uint32_t> d_src(src), before(threads), pending1(threads), after(threads);
  MOE_LAUNCH(1, threads, 32 * threads, nullptr, CpAsyncKernel)
  (d_src.get(), before.get(), pending1.get(), after.get());
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const auto b = before.Download(), p = pending1.Download(), a = after.Download();
  int early = 0, late = 0;
  for (int t = 0; t < threads; ++t) {
    ASSERT_TRUE(b[t] == 0xffffffffu || b[t] == 8u * t + 1) << "poison or the copied word";
    (b[t] == 0xffffffffu ? late : early) += 1;
    EXPECT_EQ(p[t], 8u * t + 1) << "group 0 has landed after wait_group 1";
    EXPECT_TRUE(a[t] == 0u || a[t] == 1u) << "group 1 zero-filled by wait_group 0";
  }
  EXPECT_GT(early, 0) << "some groups land at their commit";
  EXPECT_GT(late, 0) << "some groups land only at the wait";
}

// One warp: A [16][16] and B [8][16] (n-major, k contiguous) in shared memory, loaded with
// ldmatrix.x4 the way the grouped GEMM does (A: matrices (rows 0-7, k 0-7), (rows 8-15, k 0-7),
// (rows 0-7, k 8-15), (rows 8-15, k 8-15); B: (n 0-7, k 0-7), (n 0-7, k 8-15) twice), then one
// mma.m16n8k16; D is stored by the accumulator layout.
__global__ void MmaKernel(const uint16_t* a, const uint16_t* b, const float* c, float* d) {
  MOE_DYNAMIC_SMEM(uint16_t, s);
  const int lane = threadIdx.x;
  for (int i = lane; i < 256; i += 32) s[i] = a[i];
  for (int i = lane; i < 128; i += 32) s[256 + i] = b[i];
  __syncthreads();
  const int m = lane / 8, r = lane % 8;
  const int a_row = r + 8 * (m % 2), a_col = 8 * (m / 2);
  uint32_t af[4], bf[4];
  kernel::LdMatrixX4(af, kernel::SmemAddress(s + a_row * 16 + a_col));
  kernel::LdMatrixX4(bf, kernel::SmemAddress(s + 256 + r * 16 + 8 * (m % 2)));
  const int g = lane / 4, t = lane % 4;
  float acc[4] = {c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t],
                  c[(g + 8) * 8 + 2 * t + 1]};
  kernel::MmaBf16M16N8K16(acc, af, bf[0], bf[1]);
  d[g * 8 + 2 * t] = acc[0];
  d[g * 8 + 2 * t + 1] = acc[1];
  d[(g + 8) * 8 + 2 * t] = acc[2];
  d[(g + 8) * 8 + 2 * t + 1] = acc[3];
}

TEST(CudaEmulatorTest, LdMatrixAndMmaComputeTheTileProduct) {
  std::vector<uint16_t> a(256), b(128);
  std::vector<float> c(128);
  for (int i = 0; i < 256; ++i) a[i] = FloatToBf16Bits(static_cast<float>((i * 37) % 11) - 5.f);
  for (int i = 0; i < 128; ++i) b[i] = FloatToBf16Bits(static_cast<float>((i * 13) % 7) - 3.f);
  for (int i = 0; i < 128; ++i) c[i] = static_cast<float>(i % 5);
  DeviceBuffer<uint16_t> da(a), db(b);
  DeviceBuffer<float> dc(c), dd(128);
  MOE_LAUNCH(1, 32, 1024, nullptr, MmaKernel)(da.get(), db.get(), dc.get(), dd.get());
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const auto d = dd.Download();
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 8; ++j) {
      float want = c[i * 8 + j];  // small integers: exact in any order
      for (int k = 0; k < 16; ++k)
        want += Bf16BitsToFloat(a[i * 16 + k]) * Bf16BitsToFloat(b[j * 16 + k]);
      EXPECT_EQ(d[i * 8 + j], want) << i << "," << j;
    }
  }
}

__global__ void BigSmemKernel(int* out) {
  MOE_DYNAMIC_SMEM(int, s);
  s[threadIdx.x] = 1;
  out[threadIdx.x] = s[threadIdx.x];
}

TEST(CudaEmulatorTest, LaunchChecksConfigurationAndSharedMemoryOptIn) {
  DeviceBuffer<int> out(32);
  MOE_LAUNCH(1, 32, 64 * 1024, nullptr, BigSmemKernel)(out.get());
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue) << "64 KiB without the opt-in";
  ASSERT_EQ(
      cudaFuncSetAttribute(&BigSmemKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024),
      cudaSuccess);
  MOE_LAUNCH(1, 32, 64 * 1024, nullptr, BigSmemKernel)(out.get());
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  MOE_LAUNCH(1, 2048, 0, nullptr, BigSmemKernel)(out.get());
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  MOE_LAUNCH(0, 32, 0, nullptr, BigSmemKernel)(out.get());
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
}

__global__ void EarlyExitKernel(int* out) {
  if (threadIdx.x == 3) return;
  out[threadIdx.x] = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x), 0);
}

__global__ void ForeignLaneKernel(int* out) {
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_sync(0x0000ffffu, 1, 20);
}

TEST(CudaEmulatorDeathTest, RefusesWarpCollectivesOnMissingLanes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  DeviceBuffer<int> out(32);
  EXPECT_DEATH(MOE_LAUNCH(1, 32, 0, nullptr, EarlyExitKernel)(out.get()), "deadlocked");
  EXPECT_DEATH(MOE_LAUNCH(1, 32, 0, nullptr, ForeignLaneKernel)(out.get()), "outside mask");
}

}  // namespace
}  // namespace moe::cuda
