// End-to-end observability on a real in-process server (reference backend, routing collected):
// every request through native Generate, KServe ModelInfer and ModelStreamInfer produces one
// request_finished line that parses, carries every field, adds up, and agrees with the
// PerfMetrics the client received; the Prometheus series count the same requests; engine_stats
// carries the expert-load matrix; the engine observer sees steps, phases, ITLs and finishes.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "inference/grpc_service.grpc.pb.h"
#include "moeserve/v1/moeserve.grpc.pb.h"
#include "serving/metrics_telemetry.h"
#include "tests/serving/server_fixture.h"
#include "tests/testing/test_models.h"

namespace moe::serving {
namespace {

namespace pb = moeserve::v1;
namespace inf = ::inference;
using nlohmann::json;
using testing::TestServer;
using testing::TestServerOptions;

TestServerOptions RoutedServer() {
  TestServerOptions o;
  o.scheduler.collect_routing = true;
  return o;
}

std::vector<json> ReadEvents(const std::string& path, const std::string& event) {
  std::ifstream in(path);
  std::vector<json> out;
  std::string line;
  while (std::getline(in, line)) {
    json j = json::parse(line);  // every line must be valid JSON
    if (j["event"] == event) out.push_back(std::move(j));
  }
  return out;
}

class ObservabilityTest : public ::testing::Test {
 protected:
  void SetUp() override { Attach(/*log_prompts=*/false); }
  void TearDown() override {
    server_.loop().SetObserver(nullptr);
    server_.gateway().SetTelemetry(nullptr);
    if (telemetry_) telemetry_->Stop();
  }

  void Attach(bool log_prompts) {
    if (telemetry_) {
      server_.loop().SetObserver(nullptr);
      telemetry_->Stop();
    }
    dir_ = testing::MakeScratchDir("observability");
    TelemetryOptions o;
    o.metrics = true;
    o.metrics_port = 0;
    o.log_file = dir_ + "/requests.jsonl";
    o.log_prompts = log_prompts;
    o.engine_stats_interval_s = 0;  // written on demand
    auto t = Telemetry::Create(o, &server_.gateway());
    ASSERT_TRUE(t.ok()) << t.status().message();
    telemetry_ = *t;
    server_.gateway().SetTelemetry(telemetry_);
    server_.loop().SetObserver(telemetry_);
    ASSERT_EQ(Telemetry::Of(server_.gateway()), telemetry_);
  }

  // request_finished lines once `n` are there (the line is written when the call ends, which can
  // trail the client's view of the end by a moment).
  std::vector<json> WaitForRequests(size_t n) {
    std::vector<json> lines;
    for (int i = 0; i < 500; ++i) {
      telemetry_->log()->Flush();
      lines = ReadEvents(log_path(), "request_finished");
      if (lines.size() >= n) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return lines;
  }
  std::string log_path() const { return dir_ + "/requests.jsonl"; }
  double Metric(const std::string& series) {
    std::istringstream in(telemetry_->metrics()->Render());
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
    }
    return -1;
  }

  TestServer server_{RoutedServer()};
  std::shared_ptr<Telemetry> telemetry_;
  std::string dir_;
};

struct Generated {
  grpc::Status status;
  pb::Complete complete;
  int messages = 0;
};

Generated Generate(pb::MoeServe::Stub& stub, const pb::GenerateRequest& request) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  Generated g;
  auto reader = stub.Generate(&context, request);
  pb::GenerateResponse message;
  while (reader->Read(&message)) {
    ++g.messages;
    if (message.has_complete()) g.complete = message.complete();
  }
  g.status = reader->Finish();
  return g;
}

pb::GenerateRequest Request(const std::string& id, int prompt_len, int max_tokens, bool stream) {
  pb::GenerateRequest r;
  r.set_request_id(id);
  for (int i = 0; i < prompt_len; ++i) r.add_input_ids(static_cast<uint32_t>(10 + (i * 7) % 400));
  r.mutable_sampling()->set_temperature(0.f);
  r.mutable_sampling()->set_max_tokens(static_cast<uint32_t>(max_tokens));
  r.mutable_sampling()->set_ignore_eos(true);
  r.set_stream(stream);
  r.set_return_perf_metrics(true);
  return r;
}

TEST_F(ObservabilityTest, NativeRequestsLogEveryFieldAndAgreeWithPerfMetrics) {
  auto stub = pb::MoeServe::NewStub(server_.NewChannel());
  constexpr int kRequests = 12;
  std::vector<std::thread> threads;
  std::map<std::string, Generated> results;
  std::mutex mu;
  for (int i = 0; i < kRequests; ++i) {
    threads.emplace_back([&, i] {
      pb::GenerateRequest r = Request("obs-" + std::to_string(i), 5 + i, 3 + i % 5, i % 3 != 0);
      (*r.mutable_tags())["tenant"] = "t" + std::to_string(i % 2);
      (*r.mutable_tags())["suite"] = "observability";
      Generated g = Generate(*stub, r);
      std::lock_guard<std::mutex> lock(mu);
      results["obs-" + std::to_string(i)] = g;
    });
  }
  for (auto& t : threads) t.join();
  const std::vector<json> lines = WaitForRequests(kRequests);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kRequests));
  const std::vector<std::string> fields = {"ts",
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
  for (const json& j : lines) {
    for (const std::string& f : fields) EXPECT_TRUE(j.contains(f)) << "missing " << f;
    const std::string id = j["request_id"];
    ASSERT_TRUE(results.count(id)) << id;
    const Generated& g = results[id];
    ASSERT_TRUE(g.status.ok()) << g.status.error_message();
    const pb::PerfMetrics& perf = g.complete.perf();
    EXPECT_EQ(j["api"], "native");
    EXPECT_EQ(j["grpc_code"], 0);
    EXPECT_EQ(j["finish_reason"], "length");
    EXPECT_EQ(j["client_tags"]["suite"], "observability");
    EXPECT_EQ(j["model"], "moeserve");
    EXPECT_EQ(j["completion_tokens"].get<uint32_t>(), g.complete.completion_tokens());
    EXPECT_EQ(j["prompt_tokens"].get<uint32_t>(), g.complete.prompt_tokens());
    EXPECT_EQ(j["cached_tokens"].get<uint32_t>(), g.complete.cached_tokens());
    // The response's PerfMetrics and the log line are the same numbers.
    EXPECT_EQ(j["arrival_ns"].get<int64_t>(), perf.arrival_time_ns());
    EXPECT_EQ(j["first_scheduled_ns"].get<int64_t>(), perf.first_scheduled_time_ns());
    EXPECT_EQ(j["first_token_ns"].get<int64_t>(), perf.first_token_time_ns());
    EXPECT_EQ(j["last_token_ns"].get<int64_t>(), perf.last_token_time_ns());
    EXPECT_EQ(j["num_preemptions"].get<uint32_t>(), perf.num_preemptions());
    EXPECT_EQ(j["num_chunks"].get<int>(), static_cast<int>(perf.num_chunks_sent()));
    EXPECT_EQ(j["num_chunks"].get<int>(), g.messages);
    EXPECT_NEAR(j["ttft_ms"].get<double>(),
                (perf.first_token_time_ns() - perf.arrival_time_ns()) * 1e-6, 0.0011);
    // Durations add up to e2e within 1 ms, and end at the last token for a completed request.
    EXPECT_NEAR(
        j["queue_ms"].get<double>() + j["prefill_ms"].get<double>() + j["decode_ms"].get<double>(),
        j["e2e_ms"].get<double>(), 1.0);
    EXPECT_EQ(j["finished_ns"].get<int64_t>(), perf.last_token_time_ns());
    EXPECT_NEAR(j["e2e_ms"].get<double>(),
                (perf.last_token_time_ns() - perf.arrival_time_ns()) * 1e-6, 0.0011);
    EXPECT_LE(j["received_ns"].get<int64_t>(), j["arrival_ns"].get<int64_t>());
    EXPECT_GE(j["ended_ns"].get<int64_t>(), j["finished_ns"].get<int64_t>());
    EXPECT_GT(j["engine_steps"].get<int>(), 0);
    EXPECT_GT(j["batch_size_at_first_token"].get<int>(), 0);
    EXPECT_GT(j["deadline_ms"].get<int64_t>(), 50000);
    EXPECT_NE(j["seed"], nullptr);
    if (j["completion_tokens"].get<int>() > 1) {
      EXPECT_GT(j["max_itl_ms"].get<double>(), 0);
      EXPECT_NEAR(j["tpot_ms"].get<double>(),
                  (perf.last_token_time_ns() - perf.first_token_time_ns()) * 1e-6 /
                      (j["completion_tokens"].get<int>() - 1),
                  0.0011);
    }
    EXPECT_FALSE(j.contains("prompt_ids")) << "prompts are not logged by default";
  }
  // Prometheus agrees.
  EXPECT_EQ(
      Metric(
          R"(moeserve_request_success_total{model_name="moeserve",api="native",finished_reason="length"})"),
      kRequests);
  EXPECT_EQ(
      Metric(R"(moeserve_time_to_first_token_seconds_count{model_name="moeserve",api="native"})"),
      kRequests);
  EXPECT_EQ(
      Metric(R"(moeserve_e2e_request_latency_seconds_count{model_name="moeserve",api="native"})"),
      kRequests);
  int64_t itl = 0;
  int64_t generated = 0;
  for (const json& j : lines) {
    generated += j["completion_tokens"].get<int>();
    itl += j["completion_tokens"].get<int>() - 1;
  }
  EXPECT_EQ(Metric(R"(moeserve_inter_token_latency_seconds_count{model_name="moeserve"})"), itl);
  EXPECT_EQ(Metric(R"(moeserve_generation_tokens_total{model_name="moeserve"})"), generated);
  EXPECT_EQ(
      Metric(R"(moeserve_grpc_streams_open{model_name="moeserve",api="native",rpc="Generate"})"),
      0);
  EXPECT_EQ(Metric(R"(moeserve_engine_ready{model_name="moeserve"})"), 1);
}

TEST_F(ObservabilityTest, ExpertLoadsReachMetricsAndEngineStats) {
  auto stub = pb::MoeServe::NewStub(server_.NewChannel());
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(Generate(*stub, Request("moe-" + std::to_string(i), 9, 6, true)).status.ok());
  }
  WaitForRequests(4);
  const model::ModelConfig& config = server_.config();
  int moe_layers = 0;
  for (int l = 0; l < config.num_layers; ++l) moe_layers += config.IsMoeLayer(l) ? 1 : 0;
  ASSERT_GT(moe_layers, 0);
  // Every computed token goes to exactly top_k experts in every MoE layer.
  const double tokens = Metric(R"(moeserve_iteration_tokens_total_sum{model_name="moeserve"})");
  double routed = 0;
  std::istringstream in(telemetry_->metrics()->Render());
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("moeserve_expert_tokens_total{", 0) == 0) {
      routed += std::stod(line.substr(line.rfind(' ') + 1));
    }
  }
  EXPECT_GT(tokens, 0);
  EXPECT_EQ(routed, tokens * config.num_experts_per_tok * moe_layers);
  EXPECT_GE(Metric(R"(moeserve_expert_load_imbalance{model_name="moeserve"})"), 1.0);
  EXPECT_GT(Metric(R"(moeserve_expert_dispatch_seconds_count{model_name="moeserve"})"), 0);
  EXPECT_GT(Metric(R"(moeserve_grouped_gemm_seconds_count{model_name="moeserve"})"), 0);

  telemetry_->WriteEngineStats();
  telemetry_->log()->Flush();
  const std::vector<json> stats = ReadEvents(log_path(), "engine_stats");
  ASSERT_FALSE(stats.empty());
  const json& s = stats.back();
  ASSERT_TRUE(s.contains("expert_tokens"));
  ASSERT_EQ(s["expert_tokens"].size(), static_cast<size_t>(moe_layers));
  ASSERT_EQ(s["expert_tokens"][0].size(), static_cast<size_t>(config.num_experts));
  double sum = 0;
  for (const json& row : s["expert_tokens"]) {
    for (const json& v : row) sum += v.get<double>();
  }
  EXPECT_EQ(sum, routed);
  EXPECT_GT(s["distinct_experts_per_step"].get<double>(), 0);
  EXPECT_GE(s["expert_load_imbalance"].get<double>(), 1.0);
  EXPECT_GT(s["steps"].get<int>(), 0);
  EXPECT_GT(s["generation_tokens_per_s"].get<double>(), 0);
  EXPECT_EQ(s["requests_finished"].get<int>(), 4);
}

// A TRT-LLM style token request.
inf::ModelInferRequest TokenRequest(const std::string& id, int prompt_len, int output_len,
                                    bool streaming, const std::string& model = "tensorrt_llm") {
  inf::ModelInferRequest r;
  r.set_model_name(model);
  r.set_id(id);
  auto add = [&](const std::string& name, const char* type, std::vector<int64_t> shape,
                 const std::string& raw) {
    auto* in = r.add_inputs();
    in->set_name(name);
    in->set_datatype(type);
    for (int64_t d : shape) in->add_shape(d);
    r.add_raw_input_contents(raw);
  };
  std::vector<int32_t> prompt(prompt_len);
  for (int i = 0; i < prompt_len; ++i) prompt[i] = 20 + i;
  add("input_ids", "INT32", {1, prompt_len},
      std::string(reinterpret_cast<const char*>(prompt.data()), prompt.size() * 4));
  const int32_t len = prompt_len;
  add("input_lengths", "INT32", {1, 1}, std::string(reinterpret_cast<const char*>(&len), 4));
  const int32_t out = output_len;
  add("request_output_len", "INT32", {1, 1}, std::string(reinterpret_cast<const char*>(&out), 4));
  add("streaming", "BOOL", {1, 1}, std::string(1, streaming ? '\1' : '\0'));
  return r;
}

TEST_F(ObservabilityTest, KServeRequestsAndFailuresAreLoggedAndCounted) {
  auto stub = inf::GRPCInferenceService::NewStub(server_.NewChannel());
  {
    grpc::ClientContext context;
    inf::ModelInferResponse response;
    ASSERT_TRUE(stub->ModelInfer(&context, TokenRequest("unary-1", 6, 4, false), &response).ok());
  }
  {
    grpc::ClientContext context;
    auto stream = stub->ModelStreamInfer(&context);
    ASSERT_TRUE(stream->Write(TokenRequest("s-1", 5, 3, true)));
    ASSERT_TRUE(stream->Write(TokenRequest("s-2", 7, 4, true)));
    ASSERT_TRUE(stream->Write(TokenRequest("s-bad", 5, 3, true, "no_such_model")));
    stream->WritesDone();
    inf::ModelStreamInferResponse response;
    int responses = 0;
    while (stream->Read(&response)) ++responses;
    ASSERT_TRUE(stream->Finish().ok());
    EXPECT_GT(responses, 3);
  }
  // A native request that fails validation.
  auto native = pb::MoeServe::NewStub(server_.NewChannel());
  pb::GenerateRequest empty = Request("empty", 0, 3, true);
  EXPECT_EQ(Generate(*native, empty).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  const std::vector<json> lines = WaitForRequests(5);
  ASSERT_EQ(lines.size(), 5u);
  std::map<std::string, json> by_id;
  for (const json& j : lines) by_id[j["request_id"]] = j;
  EXPECT_EQ(by_id["unary-1"]["api"], "kserve_unary");
  EXPECT_EQ(by_id["unary-1"]["num_chunks"], 1);
  EXPECT_EQ(by_id["unary-1"]["completion_tokens"], 4);
  EXPECT_EQ(by_id["s-1"]["api"], "kserve_stream");
  EXPECT_EQ(by_id["s-1"]["stream"], true);
  EXPECT_EQ(by_id["s-1"]["completion_tokens"], 3);
  EXPECT_GE(by_id["s-2"]["num_chunks"].get<int>(), 1);
  EXPECT_EQ(by_id["s-bad"]["grpc_code"], static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(by_id["s-bad"]["level"], "warning");
  EXPECT_NE(by_id["s-bad"]["error_msg"].get<std::string>().find("no_such_model"),
            std::string::npos);
  EXPECT_EQ(by_id["empty"]["grpc_code"], static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(by_id["empty"]["api"], "native");
  for (const char* id : {"unary-1", "s-1", "s-2"}) {
    const json& j = by_id[id];
    EXPECT_EQ(j["grpc_code"], 0) << id;
    EXPECT_NEAR(
        j["queue_ms"].get<double>() + j["prefill_ms"].get<double>() + j["decode_ms"].get<double>(),
        j["e2e_ms"].get<double>(), 1.0)
        << id;
  }
  EXPECT_EQ(
      Metric(
          R"(moeserve_request_success_total{model_name="moeserve",api="kserve",finished_reason="length"})"),
      3);
  EXPECT_EQ(
      Metric(
          R"(moeserve_request_failure_total{model_name="moeserve",api="kserve",code="NOT_FOUND"})"),
      1);
  EXPECT_EQ(
      Metric(
          R"(moeserve_request_failure_total{model_name="moeserve",api="native",code="INVALID_ARGUMENT"})"),
      1);
  EXPECT_EQ(
      Metric(R"(moeserve_time_to_first_token_seconds_count{model_name="moeserve",api="kserve"})"),
      3);
  EXPECT_EQ(
      Metric(
          R"(moeserve_grpc_streams_open{model_name="moeserve",api="kserve",rpc="ModelStreamInfer"})"),
      0);
}

TEST_F(ObservabilityTest, CancelledRequestIsLoggedAsAborted) {
  auto stub = pb::MoeServe::NewStub(server_.NewChannel());
  grpc::ClientContext context;
  pb::GenerateRequest r = Request("cancel-me", 8, 200, true);
  auto reader = stub->Generate(&context, r);
  pb::GenerateResponse message;
  ASSERT_TRUE(reader->Read(&message));
  EXPECT_EQ(
      Metric(R"(moeserve_grpc_streams_open{model_name="moeserve",api="native",rpc="Generate"})"),
      1);
  context.TryCancel();
  while (reader->Read(&message)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  const std::vector<json> lines = WaitForRequests(1);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["grpc_code"], static_cast<int>(grpc::StatusCode::CANCELLED));
  EXPECT_EQ(lines[0]["finish_reason"], "abort");
  EXPECT_EQ(
      Metric(
          R"(moeserve_request_failure_total{model_name="moeserve",api="native",code="CANCELLED"})"),
      1);
  EXPECT_EQ(
      Metric(R"(moeserve_grpc_streams_open{model_name="moeserve",api="native",rpc="Generate"})"),
      0);
}

TEST_F(ObservabilityTest, PromptsOnlyWithLogPrompts) {
  Attach(/*log_prompts=*/true);
  auto stub = pb::MoeServe::NewStub(server_.NewChannel());
  ASSERT_TRUE(Generate(*stub, Request("with-prompt", 4, 2, false)).status.ok());
  const std::vector<json> lines = WaitForRequests(1);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["prompt_ids"], json::array({10, 17, 24, 31}));
}

// The engine-level hook, without serving: phases, ITLs and one finish record per request.
class RecordingObserver : public engine::EngineObserver {
 public:
  void OnStep(const engine::StepStats& s) override {
    std::lock_guard<std::mutex> lock(mu);
    ++steps;
    phases[static_cast<int>(s.phase)]++;
    itl += static_cast<int64_t>(s.itl_ns.size());
    generated += s.num_generated_tokens;
    prompt += s.num_prompt_tokens;
    routed += s.routing != nullptr ? 1 : 0;
  }
  void OnRequestFinished(const engine::RequestFinishRecord& r) override {
    std::lock_guard<std::mutex> lock(mu);
    finished.push_back(r);
  }
  std::mutex mu;
  int steps = 0;
  int phases[3] = {0, 0, 0};
  int64_t itl = 0, generated = 0, prompt = 0, routed = 0;
  std::vector<engine::RequestFinishRecord> finished;
};

TEST_F(ObservabilityTest, EngineObserverSeesStepsAndFinishes) {
  auto observer = std::make_shared<RecordingObserver>();
  server_.loop().SetObserver(observer);
  auto stub = pb::MoeServe::NewStub(server_.NewChannel());
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      EXPECT_TRUE(Generate(*stub, Request("e-" + std::to_string(i), 20 + i, 5, true)).status.ok());
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(server_.loop().WaitIdle(10000));
  std::lock_guard<std::mutex> lock(observer->mu);
  ASSERT_EQ(observer->finished.size(), 6u);
  EXPECT_EQ(observer->generated, 30);
  EXPECT_EQ(observer->itl, 6 * 4);
  EXPECT_GT(observer->phases[static_cast<int>(engine::StepPhase::kDecode)], 0);
  EXPECT_GT(observer->phases[static_cast<int>(engine::StepPhase::kPrefill)] +
                observer->phases[static_cast<int>(engine::StepPhase::kMixed)],
            0);
  EXPECT_EQ(observer->routed, observer->steps);
  for (const engine::RequestFinishRecord& r : observer->finished) {
    EXPECT_EQ(r.finish_reason, batching::FinishReason::kLength);
    EXPECT_EQ(r.completion_tokens, 5);
    EXPECT_LE(r.arrival_ns, r.first_scheduled_ns);
    EXPECT_LE(r.first_scheduled_ns, r.first_token_ns);
    EXPECT_LE(r.first_token_ns, r.last_token_ns);
    EXPECT_EQ(r.finished_ns, r.last_token_ns);
    EXPECT_GE(r.max_itl_ns, 0);
    EXPECT_EQ(r.status_code, absl::StatusCode::kOk);
  }
}

}  // namespace
}  // namespace moe::serving
