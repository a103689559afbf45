// Arrival-process statistics for a fixed seed: the mean rate is exact (vLLM's rescaling) and the
// inter-arrival coefficient of variation is 1/sqrt(burstiness) within sampling error.
#include "bench/serve/arrival.h"

#include <cmath>
#include <numeric>

#include <gtest/gtest.h>

namespace moe::bench {
namespace {

std::vector<double> Gaps(const std::vector<double>& t) {
  std::vector<double> g(t.size());
  for (size_t i = 0; i < t.size(); ++i) g[i] = t[i] - (i > 0 ? t[i - 1] : 0.0);
  return g;
}

double Mean(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

double Cv(const std::vector<double>& v) {
  const double m = Mean(v);
  double sq = 0;
  for (double x : v) sq += (x - m) * (x - m);
  return std::sqrt(sq / static_cast<double>(v.size())) / m;
}

TEST(ArrivalTest, InfiniteRateSendsEverythingAtOnce) {
  ArrivalOptions o;
  const std::vector<double> t = SendTimes(o, 100);
  ASSERT_EQ(t.size(), 100u);
  for (double v : t) EXPECT_EQ(v, 0.0);
}

TEST(ArrivalTest, RescaledToExactlyNOverRate) {
  ArrivalOptions o;
  o.request_rate = 250;
  o.seed = 7;
  const std::vector<double> t = SendTimes(o, 1000);
  EXPECT_NEAR(t.back(), 1000.0 / 250.0, 1e-9);
  EXPECT_NEAR(Mean(Gaps(t)), 1.0 / 250.0, 1e-12);
  EXPECT_GT(t.front(), 0.0);  // vLLM waits before the first request too
  for (size_t i = 1; i < t.size(); ++i) EXPECT_GE(t[i], t[i - 1]);
}

class BurstinessTest : public ::testing::TestWithParam<double> {};

TEST_P(BurstinessTest, CoefficientOfVariationIsOneOverSqrtBurstiness) {
  const double b = GetParam();
  ArrivalOptions o;
  o.request_rate = 100;
  o.burstiness = b;
  o.seed = 1234;
  const int64_t n = 20000;
  const std::vector<double> gaps = Gaps(SendTimes(o, n));
  EXPECT_NEAR(Mean(gaps), 0.01, 1e-12);
  const double expected = 1.0 / std::sqrt(b);
  // The sample CV of n = 20000 gamma draws has a relative standard error below 1 % for these
  // shapes, so a 4 % band is several standard errors wide (and the seed is fixed).
  EXPECT_NEAR(Cv(gaps), expected, 0.04 * expected) << "burstiness " << b;
}

INSTANTIATE_TEST_SUITE_P(Shapes, BurstinessTest, ::testing::Values(0.25, 0.5, 1.0, 2.0, 4.0));

TEST(ArrivalTest, SameSeedSameSchedule) {
  ArrivalOptions o;
  o.request_rate = 10;
  o.seed = 3;
  EXPECT_EQ(SendTimes(o, 50), SendTimes(o, 50));
  ArrivalOptions other = o;
  other.seed = 4;
  EXPECT_NE(SendTimes(o, 50), SendTimes(other, 50));
}

TEST(ArrivalTest, LinearRampUpRates) {
  ArrivalOptions o;
  o.ramp_up_strategy = "linear";
  o.ramp_up_start_rps = 10;
  o.ramp_up_end_rps = 100;
  EXPECT_DOUBLE_EQ(CurrentRequestRate(o, 0, 11), 10);
  EXPECT_DOUBLE_EQ(CurrentRequestRate(o, 5, 11), 55);
  EXPECT_DOUBLE_EQ(CurrentRequestRate(o, 10, 11), 100);
  o.ramp_up_strategy = "exponential";
  EXPECT_DOUBLE_EQ(CurrentRequestRate(o, 0, 11), 10);
  EXPECT_NEAR(CurrentRequestRate(o, 5, 11), 10 * std::sqrt(10.0), 1e-9);
  EXPECT_NEAR(CurrentRequestRate(o, 10, 11), 100, 1e-9);
}

TEST(ArrivalTest, RampUpIsNotRescaledAndSpeedsUp) {
  ArrivalOptions o;
  o.ramp_up_strategy = "linear";
  o.ramp_up_start_rps = 20;
  o.ramp_up_end_rps = 200;
  o.seed = 5;
  const int64_t n = 4000;
  const std::vector<double> gaps = Gaps(SendTimes(o, n));
  const std::vector<double> first(gaps.begin(), gaps.begin() + n / 10);
  const std::vector<double> last(gaps.end() - n / 10, gaps.end());
  // Mean gap of each decile ~ 1 / (its mean rate): ~1/29 s at the start, ~1/191 s at the end.
  EXPECT_NEAR(Mean(first), 1.0 / 29.0, 0.15 / 29.0);
  EXPECT_NEAR(Mean(last), 1.0 / 191.0, 0.15 / 191.0);
}

TEST(ArrivalTest, Validation) {
  ArrivalOptions o;
  EXPECT_TRUE(o.Validate().ok());
  o.burstiness = 0;
  EXPECT_FALSE(o.Validate().ok());
  o.burstiness = 1;
  o.request_rate = -1;
  EXPECT_FALSE(o.Validate().ok());
  o.request_rate = 1;
  o.ramp_up_strategy = "linear";
  EXPECT_FALSE(o.Validate().ok());  // no start/end rates
  o.ramp_up_start_rps = 1;
  o.ramp_up_end_rps = 5;
  EXPECT_TRUE(o.Validate().ok());
}

}  // namespace
}  // namespace moe::bench
