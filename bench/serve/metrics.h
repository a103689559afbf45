// Serving metrics over request records, with vLLM `bench serve`'s exact definitions
// (shared/docs/api-and-loadtest.md §b):
//   TTFT  = first token chunk - send;            E2EL = last token chunk - send;
//   TPOT  = (E2EL - TTFT) / (OSL - 1), per request, only for OSL > 1 (genai-perf calls this ITL);
//   ITL   = every gap between consecutive token chunks, pooled over all requests (chunk-weighted);
//   goodput = completed requests meeting every SLO / duration (TPOT counts as 0 when OSL <= 1).
// Statistics follow numpy: mean, median, population std, linear-interpolated percentiles; an empty
// sample gives zeros.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bench/serve/request_record.h"
#include "core/status.h"

namespace moe::bench {

// --goodput ttft:MS tpot:MS e2el:MS (milliseconds; a missing key is not checked).
struct SloSpec {
  std::optional<double> ttft_ms;
  std::optional<double> tpot_ms;
  std::optional<double> e2el_ms;

  bool empty() const { return !ttft_ms && !tpot_ms && !e2el_ms; }
  // Parses "ttft:200", "tpot:50", "e2el:2000" items; errors name the bad item.
  static StatusOr<SloSpec> Parse(const std::vector<std::string>& items);
  std::string ToString() const;
};

struct LatencyStats {
  double mean = 0;
  double median = 0;
  double std = 0;
  double p90 = 0;
  double p95 = 0;
  double p99 = 0;
  std::vector<std::pair<double, double>> percentiles;  // (p, value) for --metric-percentiles
  int64_t count = 0;
};

// numpy.percentile (linear interpolation) of `values` (any order); p in [0, 100].
double Percentile(std::vector<double> values, double p);
// Stats of values given in seconds, reported in milliseconds.
LatencyStats ComputeStats(const std::vector<double>& seconds,
                          const std::vector<double>& extra_percentiles);

struct MetricsOptions {
  SloSpec slo;
  std::vector<double> percentiles = {99};  // --metric-percentiles (always also 50/90/95/99)
};

struct BenchMetrics {
  int64_t num_requests = 0;  // sent (successes + failures)
  int64_t completed = 0;
  int64_t failed = 0;
  int64_t total_input = 0;   // prompt tokens of completed requests
  int64_t total_output = 0;  // output tokens of completed requests
  int64_t total_chunks = 0;  // token-carrying messages of completed requests
  double duration = 0;       // vLLM: run start to the last completion (s)
  double duration_span = 0;  // genai-perf/aiperf: last response - first send (s)
  double request_throughput = 0;
  std::optional<double> request_goodput;  // only with an SLO
  double slo_attainment = 0;              // good / sent (failures count as missed); with an SLO
  int64_t good_requests = 0;
  double output_throughput = 0;
  double total_token_throughput = 0;
  double max_output_tokens_per_s = 0;   // tokens in the busiest 1-s bucket (from the first send)
  int64_t max_concurrent_requests = 0;  // max overlap of [send, end) over completed requests
  double little_concurrency = 0;        // sum of E2EL / duration (SGLang)
  LatencyStats ttft, tpot, itl, e2el;
  LatencyStats ttst;  // time to second token chunk
  // Client TTFT split with the server's PerfMetrics (requests that report them):
  LatencyStats server_ttft;      // first_token - arrival (engine queue + prefill)
  LatencyStats server_queue;     // first_scheduled - arrival
  LatencyStats ttft_overhead;    // client TTFT - server TTFT (network, gRPC, client scheduling)
  LatencyStats send_to_arrival;  // server arrival - client send (wall clock, same host)
  LatencyStats client_queue;     // waiting for a --max-concurrency slot
  int64_t server_perf_joined = 0;
  std::map<std::string, int64_t> errors_by_code;  // gRPC code name -> count
  std::map<std::string, int64_t> finish_reasons;
};

// `run_duration` is vLLM's duration (s); <= 0 = derived from the records (max end).
BenchMetrics ComputeMetrics(const std::vector<RequestRecord>& records, double run_duration,
                            const MetricsOptions& options);

// A request's TPOT in seconds: (E2EL - TTFT) / (OSL - 1); 0 when OSL <= 1 (vLLM's goodput rule).
double RequestTpot(const RequestRecord& record);

// Does a completed request meet every SLO of `slo`?
bool MeetsSlo(const RequestRecord& record, const SloSpec& slo);

// The gRPC code's canonical name ("OK", "CANCELLED", ..., "UNAVAILABLE").
std::string GrpcCodeName(int code);

}  // namespace moe::bench
