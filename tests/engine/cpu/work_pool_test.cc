#include "engine/cpu/work_pool.h"

#include <atomic>
#include <vector>

#include <gtest/gtest.h>

#include "engine/cpu/cpu_features.h"

namespace moe::engine::cpu {
namespace {

TEST(WorkPoolTest, RunsEveryItemOnce) {
  for (int threads : {1, 2, 3}) {
    WorkPool pool(threads);
    for (int64_t n : {0, 1, 2, 7, 1000}) {
      std::vector<std::atomic<int>> hits(n);
      std::atomic<int> bad_thread{0};
      pool.Run(n, [&](int64_t i, int t) {
        hits[i].fetch_add(1);
        if (t < 0 || t >= threads) bad_thread.fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1);
      EXPECT_EQ(bad_thread.load(), 0);
    }
  }
}

TEST(WorkPoolTest, ManyQuickJobsAndThreadCap) {
  WorkPool pool(2);
  std::atomic<int64_t> sum{0};
  for (int j = 0; j < 20000; ++j) pool.Run(3, [&](int64_t i, int) { sum.fetch_add(i); });
  EXPECT_EQ(sum.load(), 20000 * 3);
  std::atomic<int> max_thread{0};
  pool.Run(
      100, [&](int64_t, int t) { max_thread = std::max(max_thread.load(), t); }, 1);
  EXPECT_EQ(max_thread.load(), 0);
}

TEST(CpuFeaturesTest, ParseAndResolve) {
  EXPECT_EQ(*ParseCpuIsa("avx512bf16"), CpuIsa::kAvx512Bf16);
  EXPECT_EQ(*ParseCpuIsa("scalar"), CpuIsa::kScalar);
  EXPECT_FALSE(ParseCpuIsa("sse9").ok());
  EXPECT_EQ(*ResolveCpuIsa(CpuIsa::kScalar), CpuIsa::kScalar);
  EXPECT_NE(*ResolveCpuIsa(CpuIsa::kAuto), CpuIsa::kAuto);
  EXPECT_GE(PhysicalCoreCount(), 1);
}

}  // namespace
}  // namespace moe::engine::cpu
