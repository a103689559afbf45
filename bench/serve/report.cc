#include "bench/serve/report.h"

#include <cmath>
#include <ctime>
#include <fstream>
#include <iomanip>

#include "absl/strings/str_format.h"

namespace moe::bench {

namespace {

void AddStats(nlohmann::ordered_json& j, const char* name, const LatencyStats& s) {
  j[absl::StrFormat("mean_%s_ms", name)] = s.mean;
  j[absl::StrFormat("median_%s_ms", name)] = s.median;
  j[absl::StrFormat("std_%s_ms", name)] = s.std;
  j[absl::StrFormat("p90_%s_ms", name)] = s.p90;
  j[absl::StrFormat("p95_%s_ms", name)] = s.p95;
  j[absl::StrFormat("p99_%s_ms", name)] = s.p99;
  for (const auto& [p, v] : s.percentiles) {
    // vLLM's key: p{int or float}_{metric}_ms, e.g. p99_ttft_ms, p99.9_ttft_ms.
    const std::string ps =
        p == std::floor(p) ? absl::StrFormat("%d", static_cast<int>(p)) : absl::StrFormat("%g", p);
    j[absl::StrFormat("p%s_%s_ms", ps, name)] = v;
  }
}

std::string Now() {
  std::time_t t = std::time(nullptr);
  std::tm tm;
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%d-%H%M%S", &tm);
  return buf;
}

}  // namespace

nlohmann::ordered_json ResultJson(const BenchMetrics& m, const PointInfo& info) {
  nlohmann::ordered_json j;
  j["date"] = Now();
  j["backend"] = "moeserve-" + info.api;
  j["label"] = info.label;
  j["model_id"] = info.model_id;
  j["dataset"] = info.dataset;
  j["num_prompts"] = info.num_prompts;
  if (std::isfinite(info.request_rate)) {
    j["request_rate"] = info.request_rate;
  } else {
    j["request_rate"] = "inf";
  }
  j["burstiness"] = info.burstiness;
  if (!info.ramp_up_strategy.empty()) {
    j["ramp_up_strategy"] = info.ramp_up_strategy;
    j["ramp_up_start_rps"] = info.ramp_up_start_rps;
    j["ramp_up_end_rps"] = info.ramp_up_end_rps;
  }
  if (info.max_concurrency > 0) {
    j["max_concurrency"] = info.max_concurrency;
  } else {
    j["max_concurrency"] = nullptr;
  }
  if (info.concurrency > 0) j["concurrency"] = info.concurrency;
  j["duration"] = m.duration;
  j["completed"] = m.completed;
  j["failed"] = m.failed;
  j["total_input"] = m.total_input;
  j["total_output"] = m.total_output;
  j["total_input_tokens"] = m.total_input;
  j["total_output_tokens"] = m.total_output;
  j["request_throughput"] = m.request_throughput;
  if (m.request_goodput) {
    j["request_goodput"] = *m.request_goodput;
  } else {
    j["request_goodput"] = nullptr;
  }
  j["output_throughput"] = m.output_throughput;
  j["total_token_throughput"] = m.total_token_throughput;
  AddStats(j, "ttft", m.ttft);
  AddStats(j, "tpot", m.tpot);
  AddStats(j, "itl", m.itl);
  AddStats(j, "e2el", m.e2el);
  j["max_output_tokens_per_s"] = m.max_output_tokens_per_s;
  j["max_concurrent_requests"] = m.max_concurrent_requests;
  // Ours.
  if (!info.slo.empty()) {
    j["goodput_slo"] = info.slo;
    j["slo_attainment"] = m.slo_attainment;
    j["good_requests"] = m.good_requests;
  }
  j["total_chunks"] = m.total_chunks;
  j["chunk_throughput"] = m.duration > 0 ? m.total_chunks / m.duration : 0.0;
  j["duration_span"] = m.duration_span;
  j["concurrency_little"] = m.little_concurrency;
  AddStats(j, "ttst", m.ttst);
  j["server_perf_joined"] = m.server_perf_joined;
  AddStats(j, "server_ttft", m.server_ttft);
  AddStats(j, "server_queue", m.server_queue);
  AddStats(j, "ttft_overhead", m.ttft_overhead);
  AddStats(j, "send_to_arrival", m.send_to_arrival);
  AddStats(j, "client_queue", m.client_queue);
  j["errors_by_code"] = m.errors_by_code;
  j["finish_reasons"] = m.finish_reasons;
  return j;
}

void PrintResultTable(std::ostream& out, const BenchMetrics& m, const PointInfo& info) {
  auto line = [&](const std::string& name, const std::string& value) {
    out << absl::StrFormat("%-40s %-10s\n", name, value);
  };
  auto num = [&](const std::string& name, double v) { line(name, absl::StrFormat("%.2f", v)); };
  auto count = [&](const std::string& name, int64_t v) { line(name, absl::StrFormat("%d", v)); };
  auto header = [&](const std::string& title) {
    const int width = 50;
    const int pad = std::max(0, width - static_cast<int>(title.size()));
    out << std::string(pad / 2, '-') << title << std::string(pad - pad / 2, '-') << "\n";
  };
  auto stats = [&](const char* title, const char* name, const LatencyStats& s) {
    header(title);
    num(absl::StrFormat("Mean %s (ms):", name), s.mean);
    num(absl::StrFormat("Median %s (ms):", name), s.median);
    num(absl::StrFormat("P90 %s (ms):", name), s.p90);
    num(absl::StrFormat("P95 %s (ms):", name), s.p95);
    num(absl::StrFormat("P99 %s (ms):", name), s.p99);
    for (const auto& [p, v] : s.percentiles) {
      if (p == 90 || p == 95 || p == 99 || p == 50) continue;
      num(absl::StrFormat("P%g %s (ms):", p, name), v);
    }
  };
  out << "============ Serving Benchmark Result ============\n";
  if (!info.ramp_up_strategy.empty()) {
    line("Traffic request rate:", absl::StrFormat("%s ramp-up %g -> %g", info.ramp_up_strategy,
                                                  info.ramp_up_start_rps, info.ramp_up_end_rps));
  } else {
    line("Traffic request rate:", std::isfinite(info.request_rate)
                                      ? absl::StrFormat("%.2f", info.request_rate)
                                      : std::string("inf"));
  }
  if (std::isfinite(info.request_rate) && info.burstiness != 1.0) {
    line("Burstiness factor:", absl::StrFormat("%.2f", info.burstiness));
  }
  if (info.concurrency > 0) count("Closed-loop concurrency:", info.concurrency);
  if (info.max_concurrency > 0) count("Maximum request concurrency:", info.max_concurrency);
  count("Successful requests:", m.completed);
  count("Failed requests:", m.failed);
  num("Benchmark duration (s):", m.duration);
  count("Total input tokens:", m.total_input);
  count("Total generated tokens:", m.total_output);
  num("Request throughput (req/s):", m.request_throughput);
  if (m.request_goodput) {
    num("Request goodput (req/s):", *m.request_goodput);
    num("SLO attainment (%):", m.slo_attainment * 100);
  }
  num("Output token throughput (tok/s):", m.output_throughput);
  num("Peak output token throughput (tok/s):", m.max_output_tokens_per_s);
  count("Peak concurrent requests:", m.max_concurrent_requests);
  num("Total Token throughput (tok/s):", m.total_token_throughput);
  stats("Time to First Token", "TTFT", m.ttft);
  stats("Time per Output Token (excl. 1st token)", "TPOT", m.tpot);
  stats("Inter-token Latency", "ITL", m.itl);
  stats("End-to-end Latency", "E2EL", m.e2el);
  if (m.server_perf_joined > 0) {
    header("TTFT split (server PerfMetrics)");
    count("Requests joined:", m.server_perf_joined);
    num("Median server TTFT (ms):", m.server_ttft.median);
    num("Median server queue (ms):", m.server_queue.median);
    num("Median client - server TTFT (ms):", m.ttft_overhead.median);
    num("P99 client - server TTFT (ms):", m.ttft_overhead.p99);
    num("Median send -> server arrival (ms):", m.send_to_arrival.median);
  }
  if (!m.errors_by_code.empty()) {
    header("Errors by gRPC code");
    for (const auto& [code, n] : m.errors_by_code) count(code + ":", n);
  }
  out << std::string(50, '=') << "\n";
}

void WriteRawRecords(std::ostream& out, const std::vector<RequestRecord>& records, int point) {
  for (const RequestRecord& r : records) {
    std::string line = RecordToJsonLine(r);
    if (point >= 0) {
      line.pop_back();  // the closing brace
      line += ",\"point\":" + std::to_string(point) + "}";
    }
    out << line << "\n";
  }
}

Status WriteJsonFile(const std::string& path, const nlohmann::ordered_json& j) {
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  if (!out) return DataLoss("cannot write '", path, "'");
  return OkStatus();
}

}  // namespace moe::bench
