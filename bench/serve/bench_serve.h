// `moeserve bench serve`: the load harness end to end. Connects to a server on this machine,
// builds the workload from its GetModelInfo, runs one point, a --sweep-rates list or a
// --capacity-search (the highest request rate whose SLO attainment stays >= the target,
// Sarathi-Serve style binary search), prints vLLM-style tables and writes --json / --raw.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/serve/load_driver.h"
#include "bench/serve/metrics.h"
#include "bench/serve/workload.h"
#include "core/status.h"

namespace moe::bench {

struct BenchServeOptions {
  TargetOptions target;
  WorkloadOptions workload;
  RunOptions run;                    // run.num_requests is derived from the options below
  bool num_prompts_given = false;    // --num-prompts on the command line
  std::vector<std::string> goodput;  // "ttft:MS", "tpot:MS", "e2el:MS"
  std::vector<double> metric_percentiles = {99};
  std::string tokenizer_dir;  // tokenize text datasets locally
  std::vector<double> sweep_rates;
  bool capacity_search = false;
  double capacity_min_rate = 0;  // known-good lower bound (0 = none)
  double capacity_max_rate = 0;  // upper bound of the search (required)
  int capacity_iterations = 8;
  double capacity_tolerance = 0.02;  // stop when (hi - lo) / hi is below this
  double slo_attainment = 0.9;       // target for --capacity-search
  std::string json_path;
  std::string raw_path;
  std::string label;

  Status Validate() const;
};

// The requests of one point: --num-prompts, or rate x duration for a finite-rate run bounded by
// --duration alone, or unbounded (INT64_MAX, the duration bounds it) for closed-loop / rate-inf
// runs bounded by --duration alone; a trace replays the whole file unless --num-prompts is given.
int64_t RequestsForPoint(const BenchServeOptions& options, double rate);

// Runs everything; `out` gets the tables. Returns the JSON that --json writes (a single result,
// or {"mode", "points": [...], ...} for sweeps and capacity searches).
StatusOr<nlohmann::ordered_json> RunBenchServe(const BenchServeOptions& options, std::ostream& out);

}  // namespace moe::bench
