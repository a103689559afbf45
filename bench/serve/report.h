// Output of `moeserve bench serve`: the console table (vLLM's layout), the result JSON (vLLM's
// keys, plus ours) and the per-request --raw JSON Lines.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/serve/metrics.h"
#include "bench/serve/request_record.h"
#include "core/status.h"

namespace moe::bench {

// What a result point was run with (echoed into the JSON).
struct PointInfo {
  std::string label;
  std::string api = "native";  // native | kserve
  std::string model_id;
  std::string dataset = "random";
  double request_rate = 0;  // inf = all at once
  double burstiness = 1.0;
  std::string ramp_up_strategy;  // "" = none
  double ramp_up_start_rps = 0;
  double ramp_up_end_rps = 0;
  int max_concurrency = 0;  // 0 = none
  int concurrency = 0;      // closed loop; 0 = open loop
  int64_t num_prompts = 0;  // requests sent
  std::string slo;          // --goodput, as given
};

// vLLM's result keys (`completed`, `failed`, `total_input`, `total_output`, `request_throughput`,
// `request_goodput`, `output_throughput`, `total_token_throughput`,
// `{mean,median,std,p90,p95,p99}_{ttft,tpot,itl,e2el}_ms`, `max_output_tokens_per_s`,
// `max_concurrent_requests`, `duration`; vLLM's own file also spells the totals
// `total_input_tokens` / `total_output_tokens`, so both are written), then ours.
nlohmann::ordered_json ResultJson(const BenchMetrics& m, const PointInfo& info);

// The vLLM-style table.
void PrintResultTable(std::ostream& out, const BenchMetrics& m, const PointInfo& info);

// Appends one JSON line per record to `out`; `point` >= 0 adds a "point" field (sweeps).
void WriteRawRecords(std::ostream& out, const std::vector<RequestRecord>& records, int point);

Status WriteJsonFile(const std::string& path, const nlohmann::ordered_json& j);

}  // namespace moe::bench
