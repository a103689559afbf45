// Unit tests of the observability building blocks: the JSON Lines writer (flush interval, size
// rotation, whole lines), the request_finished / engine_stats line formats (valid JSON, every
// documented field, escaping), the duration arithmetic (queue + prefill + decode = e2e), and the
// Prometheus series (names, vLLM bucket layouts, labels, expert-series cap, the HTTP endpoint).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "serving/metrics.h"
#include "serving/request_log.h"
#include "serving/request_log_record.h"
#include "tests/testing/test_models.h"

namespace moe::serving {
namespace {

using nlohmann::json;

std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// The fields docs/api-and-loadtest.md §(c) lists for request_finished.
const std::vector<std::string>& RequestFinishedFields() {
  static const std::vector<std::string> fields = {"ts",
                                                  "level",
                                                  "event",
                                                  "request_id",
                                                  "client_tags",
                                                  "peer",
                                                  "api",
                                                  "model",
                                                  "grpc_code",
                                                  "error_msg",
                                                  "finish_reason",
                                                  "matched_stop",
                                                  "prompt_tokens",
                                                  "cached_tokens",
                                                  "completion_tokens",
                                                  "max_tokens",
                                                  "min_tokens",
                                                  "ignore_eos",
                                                  "stream",
                                                  "temperature",
                                                  "top_p",
                                                  "top_k",
                                                  "seed",
                                                  "priority",
                                                  "deadline_ms",
                                                  "arrival_ns",
                                                  "queued_ns",
                                                  "first_scheduled_ns",
                                                  "first_token_ns",
                                                  "last_token_ns",
                                                  "finished_ns",
                                                  "validation_ms",
                                                  "queue_ms",
                                                  "prefill_ms",
                                                  "ttft_ms",
                                                  "decode_ms",
                                                  "e2e_ms",
                                                  "tpot_ms",
                                                  "max_itl_ms",
                                                  "num_chunks",
                                                  "num_preemptions",
                                                  "kv_blocks_reused",
                                                  "engine_steps",
                                                  "batch_size_at_first_token"};
  return fields;
}

RequestRecord FinishedRecord() {
  RequestRecord r;
  r.api = ApiKind::kNative;
  r.request_id = "req-\"1\"\n\x01";
  r.engine_id = 7;
  r.tags = {{"team", "search"}, {"weird\"key", "line\nbreak \xff"}};
  r.peer = "ipv4:127.0.0.1:5000";
  r.model = "moeserve";
  r.finish_reason = batching::FinishReason::kLength;
  r.prompt_tokens = 12;
  r.cached_tokens = 8;
  r.kv_block_size = 4;
  r.completion_tokens = r.generated_tokens = 5;
  r.sampling.temperature = 0.7f;
  r.sampling.top_p = 0.9f;
  r.sampling.top_k = 40;
  r.sampling.max_tokens = 5;
  r.seed = 42;
  r.stream = true;
  r.deadline_ms = 30000;
  const int64_t t = 1'700'000'000'000'000'000;
  r.received_ns = t;
  r.arrival_ns = t + 100'000;
  r.first_scheduled_ns = t + 2'100'000;
  r.first_token_ns = t + 12'100'000;
  r.last_token_ns = t + 52'100'000;
  r.finished_ns = r.last_token_ns;
  r.ended_ns = t + 53'000'000;
  r.max_itl_ns = 15'000'000;
  r.num_chunks = 5;
  r.engine_steps = 6;
  r.batch_size_at_first_token = 3;
  return r;
}

TEST(RequestRecordTest, JsonParsesAndCarriesEveryDocumentedField) {
  const RequestRecord r = FinishedRecord();
  const std::string line = RequestFinishedJson(r, ComputeDurations(r));
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const json j = json::parse(line);  // throws on invalid JSON
  for (const std::string& field : RequestFinishedFields()) {
    EXPECT_TRUE(j.contains(field)) << "missing " << field;
  }
  EXPECT_EQ(j["event"], "request_finished");
  EXPECT_EQ(j["request_id"], "req-\"1\"\n\x01");
  EXPECT_EQ(j["client_tags"]["team"], "search");
  EXPECT_EQ(j["client_tags"]["weird\"key"], "line\nbreak \xef\xbf\xbd");
  EXPECT_EQ(j["api"], "native");
  EXPECT_EQ(j["finish_reason"], "length");
  EXPECT_EQ(j["seed"], 42);
  EXPECT_EQ(j["kv_blocks_reused"], 2);
  EXPECT_DOUBLE_EQ(j["validation_ms"].get<double>(), 0.1);
  EXPECT_DOUBLE_EQ(j["queue_ms"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(j["prefill_ms"].get<double>(), 10.0);
  EXPECT_DOUBLE_EQ(j["ttft_ms"].get<double>(), 12.0);
  EXPECT_DOUBLE_EQ(j["decode_ms"].get<double>(), 40.0);
  EXPECT_DOUBLE_EQ(j["e2e_ms"].get<double>(), 52.0);
  EXPECT_DOUBLE_EQ(j["tpot_ms"].get<double>(), 10.0);
  EXPECT_DOUBLE_EQ(j["max_itl_ms"].get<double>(), 15.0);
  EXPECT_FALSE(j.contains("prompt")) << "prompts are never logged unless asked for";
  EXPECT_FALSE(j.contains("prompt_ids"));
  EXPECT_TRUE(std::regex_match(j["ts"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
}

TEST(RequestRecordTest, NumbersKeepTheirFullRange) {
  RequestRecord r = FinishedRecord();
  r.seed = UINT64_MAX;
  r.priority = -3;
  r.matched_stop_token = 0;
  r.sampling.temperature = 0.1f;
  r.received_ns = r.arrival_ns + 1500;  // clocks may disagree by a little: a negative duration
  const json j = json::parse(RequestFinishedJson(r, ComputeDurations(r)));
  EXPECT_EQ(j["seed"].get<uint64_t>(), UINT64_MAX);
  EXPECT_EQ(j["priority"], -3);
  EXPECT_EQ(j["matched_stop"], 0);
  EXPECT_FLOAT_EQ(j["temperature"].get<float>(), 0.1f);
  EXPECT_DOUBLE_EQ(j["validation_ms"].get<double>(), -0.002);
  EXPECT_EQ(j["arrival_ns"].get<int64_t>(), r.arrival_ns);
}

TEST(RequestRecordTest, PromptOnlyWhenRecorded) {
  RequestRecord r = FinishedRecord();
  r.prompt_text = "hello \"world\"";
  r.prompt_ids = {1, 2, 3};
  const json j = json::parse(RequestFinishedJson(r, ComputeDurations(r)));
  EXPECT_EQ(j["prompt"], "hello \"world\"");
  EXPECT_EQ(j["prompt_ids"], json::array({1, 2, 3}));
}

TEST(RequestRecordTest, DurationsAddUpInEveryOutcome) {
  const int64_t t = 1'700'000'000'123'456'789;
  struct Case {
    const char* name;
    int64_t scheduled, first, last, finished, ended;
  };
  const Case cases[] = {
      {"completed", t + 1'000'001, t + 3'333'333, t + 9'999'999, t + 9'999'999, t + 11'000'000},
      {"aborted after tokens", t + 1'000'001, t + 3'333'333, t + 5'000'000, t + 7'777'777,
       t + 8'000'000},
      {"aborted while prefilling", t + 1'234'567, 0, 0, t + 2'500'000, t + 2'600'000},
      {"aborted while waiting", 0, 0, 0, t + 4'000'000, t + 4'100'000},
      {"final output never seen", t + 1'000'000, t + 2'000'000, t + 3'000'000, 0, t + 6'000'000},
  };
  for (const Case& c : cases) {
    RequestRecord r;
    r.received_ns = t - 50'000;
    r.arrival_ns = t;
    r.first_scheduled_ns = c.scheduled;
    r.first_token_ns = c.first;
    r.last_token_ns = c.last;
    r.finished_ns = c.finished;
    r.ended_ns = c.ended;
    r.generated_tokens = c.first > 0 ? 4 : 0;
    const RequestDurations d = ComputeDurations(r);
    EXPECT_NEAR(d.queue_ms + d.prefill_ms + d.decode_ms, d.e2e_ms, 1e-6) << c.name;
    EXPECT_GE(d.queue_ms, 0) << c.name;
    EXPECT_GE(d.prefill_ms, 0) << c.name;
    EXPECT_GE(d.decode_ms, 0) << c.name;
    EXPECT_EQ(d.ttft_ms.has_value(), c.first > 0) << c.name;
    // The log's rounding (µs) keeps the sum within 1 ms.
    const json j = json::parse(RequestFinishedJson(r, d));
    EXPECT_NEAR(
        j["queue_ms"].get<double>() + j["prefill_ms"].get<double>() + j["decode_ms"].get<double>(),
        j["e2e_ms"].get<double>(), 1.0)
        << c.name;
  }
}

TEST(RequestRecordTest, NeverReachedTheEngine) {
  RequestRecord r;
  r.request_id = "bad";
  r.grpc_code = 3;
  r.error_msg = "input_ids: the prompt is empty";
  r.received_ns = r.ended_ns = 1'700'000'000'000'000'000;
  const json j = json::parse(RequestFinishedJson(r, ComputeDurations(r)));
  EXPECT_EQ(j["level"], "warning");
  EXPECT_EQ(j["grpc_code"], 3);
  EXPECT_EQ(j["finish_reason"], "");
  EXPECT_TRUE(j["ttft_ms"].is_null());
  EXPECT_EQ(j["e2e_ms"].get<double>(), 0.0);
}

TEST(RequestRecordTest, EngineStatsLine) {
  EngineStatsRecord s;
  s.wall_ns = 1'700'000'000'000'000'000;
  s.interval_s = 5;
  s.num_running = 3;
  s.generation_tokens_per_s = 123.5;
  s.distinct_experts_per_step = 6.5;
  s.expert_load_imbalance = 1.75;
  s.expert_tokens = {{1, 2, 3}, {4, 5, 6}};
  const json j = json::parse(EngineStatsJson(s));
  for (const char* field :
       {"ts", "event", "running", "waiting", "kv_usage", "prompt_tokens_per_s",
        "generation_tokens_per_s", "prefix_cache_hit_rate", "preemptions", "streams_open",
        "distinct_experts_per_step", "expert_load_imbalance", "expert_tokens", "mean_batch_size"}) {
    EXPECT_TRUE(j.contains(field)) << field;
  }
  EXPECT_EQ(j["event"], "engine_stats");
  EXPECT_EQ(j["expert_tokens"][1][2], 6);
  EXPECT_TRUE(j["prefix_cache_hit_rate"].is_null());
}

TEST(RequestLogTest, LinesReachTheFileWithinTheFlushIntervalWithoutAnExplicitFlush) {
  const std::string dir = testing::MakeScratchDir("request_log_flush");
  RequestLogOptions o;
  o.path = dir + "/log.jsonl";
  o.flush_interval_ms = 50;
  auto log = RequestLog::Open(o);
  ASSERT_TRUE(log.ok()) << log.status().message();
  (*log)->Write(R"({"a":1})");
  (*log)->Write(R"({"a":2})");
  // A crash now would keep what the kernel has: poll the file, never calling Flush.
  std::vector<std::string> lines;
  for (int i = 0; i < 100 && lines.size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    lines = ReadLines(o.path);
  }
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1], R"({"a":2})");
}

TEST(RequestLogTest, RotatesBySizeKeepingWholeLines) {
  const std::string dir = testing::MakeScratchDir("request_log_rotate");
  RequestLogOptions o;
  o.path = dir + "/log.jsonl";
  o.max_bytes = 1000;
  o.max_files = 3;
  auto log = RequestLog::Open(o);
  ASSERT_TRUE(log.ok());
  for (int i = 0; i < 200; ++i) {
    json j = {{"i", i}, {"pad", std::string(60 + i % 17, 'x')}};
    (*log)->Write(j.dump());
    if (i % 7 == 0) (*log)->Flush();
  }
  (*log)->Flush();
  EXPECT_TRUE(std::filesystem::exists(o.path));
  EXPECT_TRUE(std::filesystem::exists(o.path + ".1"));
  EXPECT_TRUE(std::filesystem::exists(o.path + ".3"));
  EXPECT_FALSE(std::filesystem::exists(o.path + ".4"));
  int last = -1;
  // Oldest kept file first: every line parses and the sequence is increasing without gaps.
  for (const std::string& path : {o.path + ".3", o.path + ".2", o.path + ".1", o.path}) {
    EXPECT_LE(std::filesystem::file_size(path), 1000u) << path;
    for (const std::string& line : ReadLines(path)) {
      const json j = json::parse(line);
      if (last >= 0) {
        EXPECT_EQ(j["i"].get<int>(), last + 1);
      }
      last = j["i"].get<int>();
    }
  }
  EXPECT_EQ(last, 199);
}

TEST(RequestLogTest, ReopensAppendingAndRejectsBadPaths) {
  const std::string dir = testing::MakeScratchDir("request_log_append");
  RequestLogOptions o;
  o.path = dir + "/log.jsonl";
  for (int round = 0; round < 2; ++round) {
    auto log = RequestLog::Open(o);
    ASSERT_TRUE(log.ok());
    (*log)->Write("{}");
  }
  EXPECT_EQ(ReadLines(o.path).size(), 2u);
  o.path = dir + "/missing/dir/log.jsonl";
  EXPECT_FALSE(RequestLog::Open(o).ok());
  o.path = "";
  EXPECT_EQ(RequestLog::Open(o).status().code(), absl::StatusCode::kInvalidArgument);
}

// --- metrics ------------------------------------------------------------------------------------

std::unique_ptr<ServingMetrics> RegistryOnly(int layers = 0, int experts = 0, int cap = 4096) {
  MetricsOptions o;
  o.serve_http = false;
  o.model_name = "m";
  o.max_model_len = 1000;
  o.num_moe_layers = layers;
  o.num_experts = experts;
  o.max_expert_series = cap;
  auto m = ServingMetrics::Create(o);
  EXPECT_TRUE(m.ok()) << m.status().message();
  return std::move(*m);
}

// The value of the series `name{labels...}` in a text exposition (-1 when absent).
double Value(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

TEST(MetricsTest, BucketLayoutsFollowVllmPlusSubTenMillisecondItl) {
  EXPECT_EQ(TtftBuckets(), (std::vector<double>{0.001, 0.005, 0.01, 0.02,  0.04,  0.06,  0.08, 0.1,
                                                0.25,  0.5,   0.75, 1.0,   2.5,   5.0,   7.5,  10.0,
                                                20.0,  40.0,  80.0, 160.0, 640.0, 2560.0}));
  const std::vector<double> itl = InterTokenBuckets();
  EXPECT_EQ(std::vector<double>(itl.begin(), itl.begin() + 6),
            (std::vector<double>{0.001, 0.002, 0.003, 0.005, 0.0075, 0.01}));
  EXPECT_EQ(itl.back(), 80.0);
  EXPECT_EQ(RequestLatencyBuckets().front(), 0.3);
  EXPECT_EQ(RequestLatencyBuckets().back(), 7680.0);
  EXPECT_EQ(TokenCountBuckets(1000),
            (std::vector<double>{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}));
  EXPECT_EQ(IterationTokenBuckets().back(), 16384);
}

TEST(MetricsTest, ExposesTheDocumentedSeries) {
  const std::string text = RegistryOnly(2, 4)->Render();
  for (const char* name : {"moeserve_num_requests_running",
                           "moeserve_num_requests_waiting",
                           "moeserve_kv_cache_usage_perc",
                           "moeserve_num_waiting_prompt_tokens",
                           "moeserve_grpc_streams_open",
                           "moeserve_engine_ready",
                           "moeserve_prompt_tokens_total",
                           "moeserve_generation_tokens_total",
                           "moeserve_prefix_cache_queries_total",
                           "moeserve_prefix_cache_hits_total",
                           "moeserve_request_success_total",
                           "moeserve_num_preemptions_total",
                           "moeserve_engine_steps_total",
                           "moeserve_time_to_first_token_seconds",
                           "moeserve_inter_token_latency_seconds",
                           "moeserve_request_time_per_output_token_seconds",
                           "moeserve_e2e_request_latency_seconds",
                           "moeserve_request_queue_time_seconds",
                           "moeserve_request_prefill_time_seconds",
                           "moeserve_request_decode_time_seconds",
                           "moeserve_request_prompt_tokens",
                           "moeserve_request_generation_tokens",
                           "moeserve_iteration_tokens_total",
                           "moeserve_engine_step_seconds",
                           "moeserve_expert_tokens_total",
                           "moeserve_expert_load_imbalance",
                           "moeserve_expert_dispatch_seconds",
                           "moeserve_grouped_gemm_seconds"}) {
    EXPECT_NE(text.find(std::string("# TYPE ") + name + " "), std::string::npos) << name;
  }
  EXPECT_NE(text.find(R"(moeserve_inter_token_latency_seconds_bucket{model_name="m",le="0.002"})"),
            std::string::npos);
}

TEST(MetricsTest, RequestSeriesCountOutcomesWithoutRequestIds) {
  auto m = RegistryOnly();
  RequestRecord ok = FinishedRecord();
  m->ObserveRequest(ok, ComputeDurations(ok));
  RequestRecord stopped = FinishedRecord();
  stopped.api = ApiKind::kKServeStream;
  stopped.finish_reason = batching::FinishReason::kStop;
  m->ObserveRequest(stopped, ComputeDurations(stopped));
  RequestRecord bad;
  bad.request_id = "secret-id";
  bad.grpc_code = 8;  // RESOURCE_EXHAUSTED
  m->ObserveRequest(bad, ComputeDurations(bad));
  const std::string text = m->Render();
  EXPECT_EQ(
      Value(
          text,
          R"(moeserve_request_success_total{model_name="m",api="native",finished_reason="length"})"),
      1);
  EXPECT_EQ(
      Value(
          text,
          R"(moeserve_request_success_total{model_name="m",api="kserve",finished_reason="stop"})"),
      1);
  EXPECT_EQ(
      Value(
          text,
          R"(moeserve_request_failure_total{model_name="m",api="native",code="RESOURCE_EXHAUSTED"})"),
      1);
  EXPECT_EQ(
      Value(text, R"(moeserve_time_to_first_token_seconds_count{model_name="m",api="native"})"), 1);
  EXPECT_NEAR(
      Value(text, R"(moeserve_time_to_first_token_seconds_sum{model_name="m",api="native"})"),
      0.012, 1e-9);
  EXPECT_EQ(
      Value(
          text,
          R"(moeserve_time_to_first_token_seconds_bucket{model_name="m",api="native",le="0.01"})"),
      0);
  EXPECT_EQ(
      Value(
          text,
          R"(moeserve_time_to_first_token_seconds_bucket{model_name="m",api="native",le="0.02"})"),
      1);
  EXPECT_EQ(
      Value(text,
            R"(moeserve_request_time_per_output_token_seconds_count{model_name="m",api="native"})"),
      1);
  EXPECT_EQ(text.find("secret-id"), std::string::npos);
  EXPECT_EQ(text.find("req-"), std::string::npos);
}

TEST(MetricsTest, StepSeriesItlAndExpertLoads) {
  auto m = RegistryOnly(/*layers=*/2, /*experts=*/3);
  engine::StepStats st;
  st.phase = engine::StepPhase::kDecode;
  st.num_seqs = 4;
  st.num_tokens = 4;
  st.num_generated_tokens = 4;
  st.num_running = 4;
  st.kv_usage = 0.25;
  st.step_ns = 2'000'000;
  st.timings.grouped_gemm_ns = 1'000'000;
  const std::vector<int64_t> itl = {1'500'000, 4'000'000, 20'000'000};
  st.itl_ns = itl;
  st.prefix_queried_tokens = 100;
  st.prefix_hit_tokens = 40;
  const std::vector<int32_t> tokens = {4, 0, 4, 1, 2, 5};  // [2 layers, 3 experts]
  ExpertLoadDigest d{tokens.data(), 2, 3, 2.5, 1.4};
  m->ObserveStep(st, &d);
  m->ObserveStep(st, &d);
  const std::string text = m->Render();
  EXPECT_EQ(Value(text, R"(moeserve_inter_token_latency_seconds_count{model_name="m"})"), 6);
  EXPECT_EQ(
      Value(text, R"(moeserve_inter_token_latency_seconds_bucket{model_name="m",le="0.002"})"), 2);
  EXPECT_EQ(
      Value(text, R"(moeserve_inter_token_latency_seconds_bucket{model_name="m",le="0.005"})"), 4);
  EXPECT_EQ(Value(text, R"(moeserve_engine_step_seconds_count{model_name="m",phase="decode"})"), 2);
  EXPECT_EQ(Value(text, R"(moeserve_grouped_gemm_seconds_count{model_name="m"})"), 2);
  EXPECT_EQ(Value(text, R"(moeserve_expert_dispatch_seconds_count{model_name="m"})"), 0);
  EXPECT_EQ(Value(text, R"(moeserve_generation_tokens_total{model_name="m"})"), 8);
  EXPECT_EQ(Value(text, R"(moeserve_prefix_cache_queries_total{model_name="m"})"), 100);
  EXPECT_EQ(Value(text, R"(moeserve_prefix_cache_hits_total{model_name="m"})"), 40);
  EXPECT_EQ(Value(text, R"(moeserve_kv_cache_usage_perc{model_name="m"})"), 0.25);
  EXPECT_EQ(Value(text, R"(moeserve_expert_load_imbalance{model_name="m"})"), 1.4);
  EXPECT_EQ(Value(text, R"(moeserve_expert_tokens_total{expert="2",layer="1",model_name="m"})"),
            10);
  EXPECT_EQ(Value(text, R"(moeserve_expert_tokens_total{expert="1",layer="0",model_name="m"})"), 0);
}

TEST(MetricsTest, ExpertSeriesAreCapped) {
  auto m = RegistryOnly(/*layers=*/4, /*experts=*/8, /*cap=*/6);
  std::vector<int32_t> tokens(32, 1);
  ExpertLoadDigest d{tokens.data(), 4, 8, 8, 1};
  m->ObserveStep(engine::StepStats{}, &d);
  const std::string text = m->Render();
  // 4 x 8 > 6: summed over layers, experts 5..7 folded into "other".
  EXPECT_EQ(Value(text, R"(moeserve_expert_tokens_total{expert="0",layer="all",model_name="m"})"),
            4);
  EXPECT_EQ(
      Value(text, R"(moeserve_expert_tokens_total{expert="other",layer="all",model_name="m"})"),
      12);
  EXPECT_EQ(Value(text, R"(moeserve_expert_tokens_total{expert="0",layer="0",model_name="m"})"),
            -1);
  int series = 0;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) series += line.rfind("moeserve_expert_tokens_total{", 0) == 0;
  EXPECT_EQ(series, 6);
}

std::string HttpGet(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "";
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
  (void)!::write(fd, request.data(), request.size());
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) response.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return response;
}

TEST(MetricsTest, ServesMetricsOverHttpOnLoopback) {
  MetricsOptions o;
  o.port = 0;  // any free port
  o.model_name = "m";
  bool scraped = false;
  o.on_scrape = [&scraped] { scraped = true; };
  auto m = ServingMetrics::Create(o);
  ASSERT_TRUE(m.ok()) << m.status().message();
  ASSERT_GT((*m)->port(), 0);
  (*m)->SetEngineReady(true);
  const std::string response = HttpGet((*m)->port(), "/metrics");
  EXPECT_NE(response.find("200 OK"), std::string::npos) << response.substr(0, 200);
  EXPECT_NE(response.find("moeserve_engine_ready{model_name=\"m\"} 1"), std::string::npos);
  EXPECT_TRUE(scraped);
  // A second server on the same port fails cleanly.
  o.port = (*m)->port();
  EXPECT_EQ(ServingMetrics::Create(o).status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace moe::serving
