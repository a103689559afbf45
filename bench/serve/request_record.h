// RequestRecord: what the load harness observed about one request (plain data). Every metric is
// computed from these records alone, so a run's --raw file can be re-analysed offline and tests
// build records by hand.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moe::bench {

// Server-side timestamps from PerfMetrics (native) or the perf output tensors (KServe):
// wall-clock ns since the Unix epoch; 0 = not reported.
struct ServerPerf {
  int64_t arrival_ns = 0;
  int64_t first_scheduled_ns = 0;
  int64_t first_token_ns = 0;
  int64_t last_token_ns = 0;
  int num_preemptions = 0;
  int num_chunks_sent = 0;

  bool present() const { return arrival_ns > 0 && first_token_ns > 0; }
};

struct RequestRecord {
  int64_t index = 0;  // position in the run (warm-up requests are not recorded)
  std::string request_id;
  int cluster = -1;  // domain cluster of the prompt (clustered dataset); -1 = none
  // Times in seconds on the harness's monotonic clock, relative to the start of the run.
  double t_scheduled = 0;              // when the arrival process released the request
  double t_send = 0;                   // when the call was started (after any concurrency wait)
  int64_t t_send_wall_ns = 0;          // the same instant on the wall clock (joins ServerPerf)
  std::vector<double> chunk_times;     // [num chunks]: arrival of each message carrying tokens
  std::vector<int32_t> chunk_ntokens;  // [num chunks]: tokens in that message (>= 1)
  double t_end = 0;                    // when the call's final status arrived
  int num_messages = 0;                // every response message, with or without tokens
  int prompt_tokens = 0;               // server-reported usage; fallback: the tokens sent
  int output_tokens = 0;               // server-reported usage; fallback: sum of chunk_ntokens
  int max_tokens = 0;                  // what was asked for
  bool success = false;
  int grpc_code = 0;  // grpc::StatusCode (0 = OK)
  std::string error;
  std::string finish_reason;  // "stop" | "length" | "abort" | "" (unknown)
  ServerPerf perf;

  // Client-side queueing: time spent waiting for a concurrency slot after release.
  double client_queue_time() const { return t_send - t_scheduled; }
  bool has_tokens() const { return !chunk_times.empty(); }
  // TTFT = first token chunk - send; without any token, the end of the call.
  double ttft() const { return (has_tokens() ? chunk_times.front() : t_end) - t_send; }
  // E2EL = last token chunk - send (vLLM `latency`); without any token, the end of the call.
  double e2el() const { return (has_tokens() ? chunk_times.back() : t_end) - t_send; }
};

// One JSON object (no newline) for the --raw file.
std::string RecordToJsonLine(const RequestRecord& record);

}  // namespace moe::bench
