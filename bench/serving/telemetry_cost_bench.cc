// Cost of the observability work on the serving path (issue 7's budget: logging and metrics
// <= 2 % of serving throughput): per engine step (512 decode tokens, with and without a 48x128
// routing digest), per finished request (metrics + JSON line + log append), and per scrape.
// Compare with the server's CPU per streamed token on `--backend null` (~1-3 us).
#include <benchmark/benchmark.h>

#include <filesystem>

#include "serving/metrics.h"
#include "serving/request_log.h"
#include "serving/request_log_record.h"

namespace moe::serving {
namespace {

std::unique_ptr<ServingMetrics> Metrics(int layers, int experts) {
  MetricsOptions o;
  o.serve_http = false;
  o.model_name = "m";
  o.max_model_len = 4096;
  o.num_moe_layers = layers;
  o.num_experts = experts;
  auto m = ServingMetrics::Create(o);
  return m.ok() ? std::move(*m) : nullptr;
}

engine::StepStats DecodeStep(std::vector<int64_t>& itl) {
  engine::StepStats st;
  st.phase = engine::StepPhase::kDecode;
  st.num_seqs = st.num_tokens = st.num_generated_tokens = 512;
  itl.assign(512, 1'300'000);
  for (size_t i = 0; i < itl.size(); i += 64) itl[i] = 2'600'000;
  st.itl_ns = itl;
  st.step_ns = 1'000'000;
  return st;
}

void BM_ObserveDecodeStep(benchmark::State& state) {
  auto m = Metrics(48, 128);
  std::vector<int64_t> itl;
  const engine::StepStats st = DecodeStep(itl);
  const bool routed = state.range(0) != 0;
  std::vector<int32_t> tokens(48 * 128, 32);
  ExpertLoadDigest digest{tokens.data(), 48, 128, 100, 1.5};
  for (auto _ : state) m->ObserveStep(st, routed ? &digest : nullptr);
  state.counters["ns_per_token"] =
      benchmark::Counter(512.0 * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_ObserveDecodeStep)->Arg(0)->Arg(1);

void BM_ObserveFinishedRequest(benchmark::State& state) {
  auto m = Metrics(48, 128);
  const std::string dir = std::filesystem::temp_directory_path() / "moeserve_telemetry_bench";
  std::filesystem::create_directories(dir);
  RequestLogOptions lo;
  lo.path = dir + "/log.jsonl";
  auto log = RequestLog::Open(lo);
  if (!log.ok()) {
    state.SkipWithError("cannot open the log");
    return;
  }
  RequestRecord r;
  r.api = ApiKind::kNative;
  r.request_id = "req-1";
  r.model = "moeserve";
  r.finish_reason = batching::FinishReason::kLength;
  r.prompt_tokens = 512;
  r.completion_tokens = r.generated_tokens = 1024;
  const int64_t t = 1'700'000'000'000'000'000;
  r.received_ns = t;
  r.arrival_ns = t + 100'000;
  r.first_scheduled_ns = t + 200'000;
  r.first_token_ns = t + 5'000'000;
  r.last_token_ns = t + 900'000'000;
  r.finished_ns = r.ended_ns = t + 900'100'000;
  uint64_t id = 0;
  for (auto _ : state) {
    r.engine_id = ++id;
    const RequestDurations d = ComputeDurations(r);
    m->ObserveRequest(r, d);
    (*log)->Write(RequestFinishedJson(r, d));
  }
  log->reset();  // flushes and closes before the directory goes
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_ObserveFinishedRequest);

void BM_RenderScrape(benchmark::State& state) {
  auto m = Metrics(48, 128);
  size_t bytes = 0;
  for (auto _ : state) bytes = m->Render().size();
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_RenderScrape)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace moe::serving

BENCHMARK_MAIN();
