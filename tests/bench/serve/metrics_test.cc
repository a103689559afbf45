// Metric math on synthetic timelines whose answers are worked out by hand (vLLM's definitions).
#include "bench/serve/metrics.h"

#include <cmath>

#include <gtest/gtest.h>

#include "bench/serve/report.h"

namespace moe::bench {
namespace {

RequestRecord Ok(double t_send, std::vector<double> chunks, std::vector<int32_t> ntokens,
                 int prompt = 10) {
  RequestRecord r;
  r.t_send = t_send;
  r.t_scheduled = t_send;
  r.chunk_times = std::move(chunks);
  r.chunk_ntokens = std::move(ntokens);
  r.t_end = r.chunk_times.back() + 0.001;
  r.prompt_tokens = prompt;
  for (int32_t n : r.chunk_ntokens) r.output_tokens += n;
  r.success = true;
  r.finish_reason = "length";
  return r;
}

RequestRecord Failed(double t_send, int code) {
  RequestRecord r;
  r.t_send = t_send;
  r.t_scheduled = t_send;
  r.t_end = t_send + 0.01;
  r.success = false;
  r.grpc_code = code;
  r.error = "boom";
  return r;
}

// R1: send 0, chunks at 0.1 (1 token), 0.2 (1), 0.4 (2)  -> OSL 4, TTFT 100, E2EL 400,
//     TPOT (400-100)/3 = 100, ITL gaps 100, 200.
// R2: send 1.0, chunks at 1.3 (1), 1.5 (1)              -> OSL 2, TTFT 300, E2EL 500, TPOT 200,
//     ITL gap 200.
// R3: send 0.3, one chunk at 0.35 (1 token)              -> OSL 1, TTFT 50, E2EL 50, no TPOT, no
//     ITL.
// R4: failed with UNAVAILABLE.
std::vector<RequestRecord> Timeline() {
  return {Ok(0.0, {0.1, 0.2, 0.4}, {1, 1, 2}, 10), Ok(1.0, {1.3, 1.5}, {1, 1}, 20),
          Ok(0.3, {0.35}, {1}, 30), Failed(0.6, 14)};
}

constexpr double kEps = 1e-9;

TEST(BenchMetricsTest, CountsAndThroughput) {
  const BenchMetrics m = ComputeMetrics(Timeline(), /*run_duration=*/2.0, {});
  EXPECT_EQ(m.num_requests, 4);
  EXPECT_EQ(m.completed, 3);
  EXPECT_EQ(m.failed, 1);
  EXPECT_EQ(m.total_input, 60);
  EXPECT_EQ(m.total_output, 7);
  EXPECT_EQ(m.total_chunks, 6);
  EXPECT_NEAR(m.duration, 2.0, kEps);
  EXPECT_NEAR(m.request_throughput, 1.5, kEps);
  EXPECT_NEAR(m.output_throughput, 3.5, kEps);
  EXPECT_NEAR(m.total_token_throughput, 33.5, kEps);
  EXPECT_FALSE(m.request_goodput.has_value());  // no SLO given
  EXPECT_EQ(m.errors_by_code.at("UNAVAILABLE"), 1);
  EXPECT_EQ(m.finish_reasons.at("length"), 3);
  // Little's law concurrency: (0.4 + 0.5 + 0.05) / 2.
  EXPECT_NEAR(m.little_concurrency, 0.475, kEps);
}

TEST(BenchMetricsTest, TtftStatsFollowNumpy) {
  const BenchMetrics m = ComputeMetrics(Timeline(), 2.0, {});
  // TTFT ms = {100, 300, 50}: mean 150, median 100, population std sqrt(35000/3).
  EXPECT_NEAR(m.ttft.mean, 150, 1e-6);
  EXPECT_NEAR(m.ttft.median, 100, 1e-6);
  EXPECT_NEAR(m.ttft.std, std::sqrt(35000.0 / 3.0), 1e-6);
  // numpy linear percentiles over sorted {50, 100, 300}: rank p/100 * 2.
  EXPECT_NEAR(m.ttft.p90, 100 + 0.8 * 200, 1e-6);
  EXPECT_NEAR(m.ttft.p95, 100 + 0.9 * 200, 1e-6);
  EXPECT_NEAR(m.ttft.p99, 100 + 0.98 * 200, 1e-6);
  EXPECT_EQ(m.ttft.count, 3);
  // E2EL ms = {400, 500, 50}.
  EXPECT_NEAR(m.e2el.mean, 950.0 / 3.0, 1e-6);
  EXPECT_NEAR(m.e2el.median, 400, 1e-6);
}

TEST(BenchMetricsTest, TpotIsPerRequestAndExcludesSingleTokenOutputs) {
  const BenchMetrics m = ComputeMetrics(Timeline(), 2.0, {});
  // TPOT ms = {100 (R1), 200 (R2)}; R3 (OSL 1) is excluded, not counted as 0.
  EXPECT_EQ(m.tpot.count, 2);
  EXPECT_NEAR(m.tpot.mean, 150, 1e-6);
  EXPECT_NEAR(m.tpot.median, 150, 1e-6);
  EXPECT_NEAR(m.tpot.std, 50, 1e-6);
}

TEST(BenchMetricsTest, ItlPoolsEveryChunkGap) {
  const BenchMetrics m = ComputeMetrics(Timeline(), 2.0, {});
  // ITL ms pooled over all chunk gaps = {100, 200, 200}: mean 166.67. Not the mean of per-request
  // means (175), and not TPOT (150): a 2-token chunk is one gap.
  EXPECT_EQ(m.itl.count, 3);
  EXPECT_NEAR(m.itl.mean, 500.0 / 3.0, 1e-6);
  EXPECT_NEAR(m.itl.median, 200, 1e-6);
  EXPECT_NE(m.itl.mean, m.tpot.mean);
  // TTST: second chunk - first chunk, for requests with two chunks: {100, 200}.
  EXPECT_EQ(m.ttst.count, 2);
  EXPECT_NEAR(m.ttst.mean, 150, 1e-6);
}

TEST(BenchMetricsTest, GoodputCountsOnlyRequestsMeetingEverySlo) {
  MetricsOptions o;
  // R1: TTFT 100 <= 100 (equal passes), TPOT 100 <= 150: good. R2: TTFT 300: missed.
  // R3: TTFT 50, TPOT counted as 0 (OSL 1): good. R4 failed: never good.
  ASSERT_TRUE(SloSpec::Parse({"ttft:100", "tpot:150"}).ok());
  o.slo = *SloSpec::Parse({"ttft:100", "tpot:150"});
  BenchMetrics m = ComputeMetrics(Timeline(), 2.0, o);
  EXPECT_EQ(m.good_requests, 2);
  ASSERT_TRUE(m.request_goodput.has_value());
  EXPECT_NEAR(*m.request_goodput, 1.0, kEps);
  EXPECT_NEAR(m.slo_attainment, 0.5, kEps);  // 2 good of 4 sent

  // A tight TPOT SLO fails R1 but not the single-token R3.
  o.slo = *SloSpec::Parse({"ttft:1000", "tpot:50"});
  m = ComputeMetrics(Timeline(), 2.0, o);
  EXPECT_EQ(m.good_requests, 1);

  // E2EL alone.
  o.slo = *SloSpec::Parse({"e2el:450"});
  m = ComputeMetrics(Timeline(), 2.0, o);
  EXPECT_EQ(m.good_requests, 2);  // R1 (400), R3 (50)
}

TEST(BenchMetricsTest, SloParsingNamesTheBadItem) {
  EXPECT_FALSE(SloSpec::Parse({"ttft"}).ok());
  EXPECT_FALSE(SloSpec::Parse({"itl:5"}).ok());
  EXPECT_FALSE(SloSpec::Parse({"ttft:-1"}).ok());
  auto s = SloSpec::Parse({"tpot:50", "ttft:200"});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->ToString(), "ttft:200 tpot:50");
  EXPECT_NE(std::string(SloSpec::Parse({"itl:5"}).status().message()).find("itl"),
            std::string::npos);
}

TEST(BenchMetricsTest, PeakTokensAndConcurrency) {
  const BenchMetrics m = ComputeMetrics(Timeline(), 2.0, {});
  // 1-s buckets from the first send (0): [0,1) holds R1's 4 tokens and R3's 1; [1,2) R2's 2.
  EXPECT_NEAR(m.max_output_tokens_per_s, 5, kEps);
  // [0, 0.4), [1.0, 1.5), [0.3, 0.35): R1 and R3 overlap.
  EXPECT_EQ(m.max_concurrent_requests, 2);
}

TEST(BenchMetricsTest, TouchingIntervalsDoNotOverlap) {
  std::vector<RequestRecord> rs = {Ok(0.0, {0.5}, {1}), Ok(0.5, {1.0}, {1}), Ok(1.0, {1.5}, {1})};
  const BenchMetrics m = ComputeMetrics(rs, 0, {});
  EXPECT_EQ(m.max_concurrent_requests, 1);
  EXPECT_NEAR(m.duration, 1.501, kEps);  // derived: the last end
}

TEST(BenchMetricsTest, EmptyAndAllFailed) {
  BenchMetrics m = ComputeMetrics({}, 1.0, {});
  EXPECT_EQ(m.completed, 0);
  EXPECT_EQ(m.ttft.mean, 0);
  m = ComputeMetrics({Failed(0, 8), Failed(0.1, 8), Failed(0.2, 4)}, 1.0, {});
  EXPECT_EQ(m.completed, 0);
  EXPECT_EQ(m.failed, 3);
  EXPECT_EQ(m.errors_by_code.at("RESOURCE_EXHAUSTED"), 2);
  EXPECT_EQ(m.errors_by_code.at("DEADLINE_EXCEEDED"), 1);
  EXPECT_EQ(m.max_concurrent_requests, 0);
}

TEST(BenchMetricsTest, ServerPerfSplitsTtft) {
  RequestRecord r = Ok(0.0, {0.010, 0.020}, {1, 1});
  r.t_send_wall_ns = 1'000'000'000;
  r.perf.arrival_ns = 1'000'500'000;          // 0.5 ms after the send
  r.perf.first_scheduled_ns = 1'001'500'000;  // 1 ms queue
  r.perf.first_token_ns = 1'008'500'000;      // server TTFT 8 ms
  const BenchMetrics m = ComputeMetrics({r}, 1.0, {});
  EXPECT_EQ(m.server_perf_joined, 1);
  EXPECT_NEAR(m.server_ttft.median, 8.0, 1e-6);
  EXPECT_NEAR(m.server_queue.median, 1.0, 1e-6);
  EXPECT_NEAR(m.ttft_overhead.median, 2.0, 1e-6);  // 10 ms client - 8 ms server
  EXPECT_NEAR(m.send_to_arrival.median, 0.5, 1e-6);
}

TEST(BenchMetricsTest, PercentileMatchesNumpy) {
  EXPECT_NEAR(Percentile({1, 2, 3, 4}, 50), 2.5, kEps);
  EXPECT_NEAR(Percentile({4, 1, 3, 2}, 90), 3.7, kEps);
  EXPECT_NEAR(Percentile({7}, 99), 7, kEps);
  EXPECT_NEAR(Percentile({}, 99), 0, kEps);
  const LatencyStats s = ComputeStats({0.001, 0.002, 0.003, 0.004}, {99.9, 25});
  ASSERT_EQ(s.percentiles.size(), 2u);
  EXPECT_NEAR(s.percentiles[0].second, 3.997, 1e-9);
  EXPECT_NEAR(s.percentiles[1].second, 1.75, 1e-9);
}

TEST(BenchMetricsTest, ResultJsonHasVllmKeys) {
  MetricsOptions o;
  o.slo = *SloSpec::Parse({"ttft:100"});
  o.percentiles = {99.9};
  const BenchMetrics m = ComputeMetrics(Timeline(), 2.0, o);
  PointInfo info;
  info.request_rate = 10;
  const nlohmann::ordered_json j = ResultJson(m, info);
  for (const char* key : {"completed", "failed", "total_input", "total_output",
                          "total_input_tokens", "total_output_tokens", "request_throughput",
                          "request_goodput", "output_throughput", "total_token_throughput",
                          "max_output_tokens_per_s", "max_concurrent_requests", "duration"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  for (const char* metric : {"ttft", "tpot", "itl", "e2el"}) {
    for (const char* stat : {"mean", "median", "std", "p90", "p95", "p99", "p99.9"}) {
      const std::string key = std::string(stat) + "_" + metric + "_ms";
      EXPECT_TRUE(j.contains(key)) << key;
    }
  }
  EXPECT_EQ(j["completed"], 3);
  EXPECT_EQ(j["total_output"], 7);
  EXPECT_NEAR(j["mean_itl_ms"].get<double>(), 500.0 / 3.0, 1e-6);
  EXPECT_NEAR(j["request_goodput"].get<double>(), 1.0, 1e-9);  // R1 and R3 good, over 2 s
}

TEST(BenchMetricsTest, RawLineCarriesTheRecord) {
  RequestRecord r = Ok(0.25, {0.5, 0.75}, {1, 3});
  r.request_id = "bench-7";
  r.perf.arrival_ns = 5;
  r.perf.first_token_ns = 9;
  const nlohmann::json j = nlohmann::json::parse(RecordToJsonLine(r));
  EXPECT_EQ(j["request_id"], "bench-7");
  EXPECT_EQ(j["chunk_ntokens"], nlohmann::json::array({1, 3}));
  EXPECT_EQ(j["output_tokens"], 4);
  EXPECT_EQ(j["server_first_token_ns"], 9);
  EXPECT_DOUBLE_EQ(j["t_send"].get<double>(), 0.25);
}

}  // namespace
}  // namespace moe::bench
