// Option rules of `moeserve bench serve` that need no server: request counts per point and the
// validation of combinations.
#include "bench/serve/bench_serve.h"

#include <limits>

#include <gtest/gtest.h>

namespace moe::bench {
namespace {

constexpr int64_t kUnbounded = std::numeric_limits<int64_t>::max();
constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(BenchServeOptionsTest, RequestsForPoint) {
  BenchServeOptions o;
  o.workload.num_prompts = 1000;
  EXPECT_EQ(RequestsForPoint(o, 10), 1000);
  EXPECT_EQ(RequestsForPoint(o, kInf), 1000);
  // --duration alone: a finite rate sends rate x duration; inf / closed loop is time-bound.
  o.run.duration_s = 2.5;
  EXPECT_EQ(RequestsForPoint(o, 10), 25);
  EXPECT_EQ(RequestsForPoint(o, kInf), kUnbounded);
  o.run.concurrency = 8;
  EXPECT_EQ(RequestsForPoint(o, kInf), kUnbounded);
  // An explicit --num-prompts always wins.
  o.num_prompts_given = true;
  EXPECT_EQ(RequestsForPoint(o, 10), 1000);
  // A trace replays the whole file unless --num-prompts is given.
  o.workload.dataset_name = "trace";
  EXPECT_EQ(RequestsForPoint(o, kInf), 1000);
  o.num_prompts_given = false;
  EXPECT_EQ(RequestsForPoint(o, kInf), kUnbounded);
}

TEST(BenchServeOptionsTest, ValidationRefusesBadCombinations) {
  BenchServeOptions o;
  EXPECT_TRUE(o.Validate().ok());
  o.target.host = "192.168.0.7";
  EXPECT_NE(std::string(o.Validate().message()).find("loopback"), std::string::npos);
  o = BenchServeOptions();
  o.run.concurrency = 4;
  o.run.arrival.request_rate = 10;
  EXPECT_FALSE(o.Validate().ok());  // closed loop with a rate
  o = BenchServeOptions();
  o.capacity_search = true;
  EXPECT_FALSE(o.Validate().ok());  // no SLO
  o.goodput = {"ttft:100"};
  EXPECT_FALSE(o.Validate().ok());  // no max rate
  o.capacity_max_rate = 50;
  EXPECT_TRUE(o.Validate().ok());
  o.sweep_rates = {1, 2};
  EXPECT_FALSE(o.Validate().ok());  // sweep and capacity search together
  o = BenchServeOptions();
  o.goodput = {"ttft=100"};
  EXPECT_FALSE(o.Validate().ok());
  o = BenchServeOptions();
  o.metric_percentiles = {101};
  EXPECT_FALSE(o.Validate().ok());
}

}  // namespace
}  // namespace moe::bench
