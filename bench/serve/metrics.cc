#include "bench/serve/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace moe::bench {

StatusOr<SloSpec> SloSpec::Parse(const std::vector<std::string>& items) {
  SloSpec slo;
  for (const std::string& item : items) {
    const size_t colon = item.find(':');
    if (colon == std::string::npos) {
      return InvalidArgument("--goodput: '", item, "' is not KEY:MS (keys: ttft, tpot, e2el)");
    }
    const std::string key = item.substr(0, colon);
    double value = 0;
    if (!absl::SimpleAtod(item.substr(colon + 1), &value) || !(value >= 0) ||
        !std::isfinite(value)) {
      return InvalidArgument("--goodput: '", item, "': the value must be milliseconds >= 0");
    }
    if (key == "ttft") {
      slo.ttft_ms = value;
    } else if (key == "tpot") {
      slo.tpot_ms = value;
    } else if (key == "e2el") {
      slo.e2el_ms = value;
    } else {
      return InvalidArgument("--goodput: unknown metric '", key, "' (keys: ttft, tpot, e2el)");
    }
  }
  return slo;
}

std::string SloSpec::ToString() const {
  std::string s;
  auto add = [&](const char* name, const std::optional<double>& v) {
    if (!v) return;
    if (!s.empty()) s += " ";
    absl::StrAppend(&s, name, ":", *v);
  };
  add("ttft", ttft_ms);
  add("tpot", tpot_ms);
  add("e2el", e2el_ms);
  return s;
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  // numpy's default ("linear"): rank = p/100 * (n - 1), interpolated between neighbours.
  const double rank = p / 100.0 * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  const double frac = rank - static_cast<double>(lo);
  return values[lo] + (values[hi] - values[lo]) * frac;
}

namespace {

// Percentile of an already sorted sample.
double SortedPercentile(const std::vector<double>& sorted, double p) {
  const double rank = p / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - static_cast<double>(lo));
}

}  // namespace

LatencyStats ComputeStats(const std::vector<double>& seconds,
                          const std::vector<double>& extra_percentiles) {
  LatencyStats s;
  s.count = static_cast<int64_t>(seconds.size());
  for (double p : extra_percentiles) s.percentiles.emplace_back(p, 0.0);
  if (seconds.empty()) return s;
  std::vector<double> ms(seconds.size());
  for (size_t i = 0; i < seconds.size(); ++i) ms[i] = seconds[i] * 1000.0;
  const double n = static_cast<double>(ms.size());
  s.mean = std::accumulate(ms.begin(), ms.end(), 0.0) / n;
  double sq = 0;
  for (double v : ms) sq += (v - s.mean) * (v - s.mean);
  s.std = std::sqrt(sq / n);
  std::sort(ms.begin(), ms.end());
  s.median = SortedPercentile(ms, 50);
  s.p90 = SortedPercentile(ms, 90);
  s.p95 = SortedPercentile(ms, 95);
  s.p99 = SortedPercentile(ms, 99);
  for (auto& [p, v] : s.percentiles) v = SortedPercentile(ms, p);
  return s;
}

double RequestTpot(const RequestRecord& r) {
  if (r.output_tokens <= 1) return 0;
  return (r.e2el() - r.ttft()) / static_cast<double>(r.output_tokens - 1);
}

bool MeetsSlo(const RequestRecord& r, const SloSpec& slo) {
  if (!r.success) return false;
  // vLLM compares seconds against ms / 1000 with `>=`: a metric equal to its SLO passes.
  if (slo.ttft_ms && r.ttft() > *slo.ttft_ms / 1000.0) return false;
  if (slo.tpot_ms && RequestTpot(r) > *slo.tpot_ms / 1000.0) return false;
  if (slo.e2el_ms && r.e2el() > *slo.e2el_ms / 1000.0) return false;
  return true;
}

std::string GrpcCodeName(int code) {
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  if (code >= 0 && code < static_cast<int>(std::size(kNames))) return kNames[code];
  return absl::StrCat("CODE_", code);
}

BenchMetrics ComputeMetrics(const std::vector<RequestRecord>& records, double run_duration,
                            const MetricsOptions& options) {
  BenchMetrics m;
  const std::vector<double>& extra = options.percentiles;
  std::vector<double> ttfts, tpots, itls, e2els, ttsts;
  std::vector<double> server_ttfts, server_queues, overheads, send_to_arrival, client_queues;
  double max_end = 0;
  double min_send = 0;
  double max_last_response = 0;
  bool any = false;
  double sum_e2el = 0;
  m.num_requests = static_cast<int64_t>(records.size());
  for (const RequestRecord& r : records) {
    max_end = std::max(max_end, r.t_end);
    if (!any || r.t_send < min_send) min_send = r.t_send;
    any = true;
    max_last_response = std::max(max_last_response, r.t_end);
    client_queues.push_back(r.client_queue_time());
    if (!r.success) {
      ++m.failed;
      ++m.errors_by_code[GrpcCodeName(r.grpc_code == 0 ? 2 : r.grpc_code)];
      continue;
    }
    ++m.completed;
    ++m.finish_reasons[r.finish_reason.empty() ? "unknown" : r.finish_reason];
    m.total_input += r.prompt_tokens;
    m.total_output += r.output_tokens;
    m.total_chunks += static_cast<int64_t>(r.chunk_times.size());
    ttfts.push_back(r.ttft());
    e2els.push_back(r.e2el());
    sum_e2el += r.e2el();
    if (r.output_tokens > 1) tpots.push_back(RequestTpot(r));
    for (size_t i = 1; i < r.chunk_times.size(); ++i) {
      itls.push_back(r.chunk_times[i] - r.chunk_times[i - 1]);
    }
    if (r.chunk_times.size() >= 2) ttsts.push_back(r.chunk_times[1] - r.chunk_times[0]);
    if (!options.slo.empty() && MeetsSlo(r, options.slo)) ++m.good_requests;
    if (r.perf.present()) {
      ++m.server_perf_joined;
      const double server_ttft = (r.perf.first_token_ns - r.perf.arrival_ns) * 1e-9;
      server_ttfts.push_back(server_ttft);
      if (r.perf.first_scheduled_ns > 0) {
        server_queues.push_back((r.perf.first_scheduled_ns - r.perf.arrival_ns) * 1e-9);
      }
      overheads.push_back(r.ttft() - server_ttft);
      if (r.t_send_wall_ns > 0) {
        send_to_arrival.push_back((r.perf.arrival_ns - r.t_send_wall_ns) * 1e-9);
      }
    }
  }
  m.duration = run_duration > 0 ? run_duration : max_end;
  m.duration_span = any ? max_last_response - min_send : 0;
  if (m.duration > 0) {
    m.request_throughput = m.completed / m.duration;
    m.output_throughput = m.total_output / m.duration;
    m.total_token_throughput = (m.total_input + m.total_output) / m.duration;
    m.little_concurrency = sum_e2el / m.duration;
    if (!options.slo.empty()) m.request_goodput = m.good_requests / m.duration;
  }
  if (!options.slo.empty() && m.num_requests > 0) {
    m.slo_attainment = static_cast<double>(m.good_requests) / static_cast<double>(m.num_requests);
  }
  m.ttft = ComputeStats(ttfts, extra);
  m.tpot = ComputeStats(tpots, extra);
  m.itl = ComputeStats(itls, extra);
  m.e2el = ComputeStats(e2els, extra);
  m.ttst = ComputeStats(ttsts, extra);
  m.server_ttft = ComputeStats(server_ttfts, extra);
  m.server_queue = ComputeStats(server_queues, extra);
  m.ttft_overhead = ComputeStats(overheads, extra);
  m.send_to_arrival = ComputeStats(send_to_arrival, extra);
  m.client_queue = ComputeStats(client_queues, extra);

  // Peaks over completed requests, as vLLM: 1-s buckets from the earliest send, counting tokens
  // (vLLM counts chunks, the same for one-token chunks); concurrency as the exact maximum overlap
  // of [send, end of last token) intervals.
  std::vector<double> buckets;
  std::vector<std::pair<double, int>> edges;
  double t0 = 0;
  bool have_t0 = false;
  for (const RequestRecord& r : records) {
    if (!r.success) continue;
    if (!have_t0 || r.t_send < t0) t0 = r.t_send;
    have_t0 = true;
  }
  for (const RequestRecord& r : records) {
    if (!r.success) continue;
    for (size_t i = 0; i < r.chunk_times.size(); ++i) {
      const double rel = r.chunk_times[i] - t0;
      if (rel < 0) continue;
      const size_t b = static_cast<size_t>(rel);
      if (b >= buckets.size()) buckets.resize(b + 1, 0.0);
      buckets[b] += r.chunk_ntokens[i];
    }
    const double end = r.t_send + r.e2el();
    edges.emplace_back(r.t_send, +1);
    edges.emplace_back(end, -1);
  }
  for (double b : buckets) m.max_output_tokens_per_s = std::max(m.max_output_tokens_per_s, b);
  // Ends sort before starts at the same instant: [start, end) intervals touching do not overlap.
  std::sort(edges.begin(), edges.end());
  int64_t live = 0;
  for (const auto& [t, d] : edges) {
    live += d;
    m.max_concurrent_requests = std::max(m.max_concurrent_requests, live);
  }
  return m;
}

}  // namespace moe::bench
