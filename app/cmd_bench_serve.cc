// `moeserve bench serve`: the online load harness (vLLM `bench serve` conventions) against a
// running moeserve server on this machine, over the native Generate API or KServe
// ModelStreamInfer. The harness itself lives in bench/serve/; this file only maps flags.
#include <cmath>
#include <iostream>
#include <limits>

#include "absl/strings/numbers.h"
#include "app/commands.h"
#include "bench/serve/bench_serve.h"
#include "bench/serve/progress.h"

namespace moe::app {
namespace {

struct BenchServeFlags {
  bench::BenchServeOptions o;
  std::string api = "native";
  std::string request_rate = "inf";
  std::vector<std::string> sweep_rates;
  bool no_progress = false;
  bool no_perf_metrics = false;
  double release_spin_us = 1000;
};

StatusOr<double> ParseRate(const std::string& text, const char* flag) {
  if (text == "inf" || text == "Inf" || text == "infinity") {
    return std::numeric_limits<double>::infinity();
  }
  double v = 0;
  if (!absl::SimpleAtod(text, &v) || !(v > 0)) {
    return InvalidArgument(flag, ": '", text, "' is not a rate > 0 (requests/s) or inf");
  }
  return v;
}

Status Prepare(BenchServeFlags& f) {
  f.o.target.api = f.api == "kserve" ? bench::Api::kKServe : bench::Api::kNative;
  MOE_ASSIGN_OR_RETURN(f.o.run.arrival.request_rate, ParseRate(f.request_rate, "--request-rate"));
  f.o.sweep_rates.clear();
  for (const std::string& r : f.sweep_rates) {
    MOE_ASSIGN_OR_RETURN(double v, ParseRate(r, "--sweep-rates"));
    f.o.sweep_rates.push_back(v);
  }
  f.o.run.arrival.seed = f.o.workload.seed;
  f.o.run.progress = !f.no_progress && bench::ProgressBar::StderrIsTerminal();
  f.o.run.return_perf = !f.no_perf_metrics;
  if (!(f.release_spin_us >= 0)) return InvalidArgument("--release-spin-us must be >= 0");
  f.o.run.release_spin_s = f.release_spin_us * 1e-6;
  return OkStatus();
}

}  // namespace

Action RegisterBenchServe(CLI::App& bench) {
  auto f = std::make_shared<BenchServeFlags>();
  bench::BenchServeOptions& o = f->o;
  CLI::App* cmd = bench.add_subcommand(
      "serve", "Load-test a running server on this machine (vLLM bench serve metrics and keys)");
  // Target.
  cmd->add_option("--host", o.target.host, "server address (loopback only)")->capture_default_str();
  cmd->add_option("--port", o.target.port, "server port")->capture_default_str();
  cmd->add_option("--api", f->api, "native (MoeServe.Generate) | kserve (ModelStreamInfer)")
      ->check(CLI::IsMember({"native", "kserve"}))
      ->capture_default_str();
  cmd->add_option("--kserve-model", o.target.kserve_model, "KServe token model name")
      ->capture_default_str();
  cmd->add_option("--kserve-text-model", o.target.kserve_text_model,
                  "KServe text model name (text prompts)")
      ->capture_default_str();
  cmd->add_option("--num-connections", o.target.num_connections,
                  "HTTP/2 connections to spread requests over")
      ->capture_default_str();
  // Workload.
  cmd->add_option("--dataset-name", o.workload.dataset_name,
                  "random | clustered | sharegpt | text | trace")
      ->check(CLI::IsMember({"random", "clustered", "sharegpt", "text", "trace"}))
      ->capture_default_str();
  cmd->add_option("--dataset-path", o.workload.dataset_path,
                  "ShareGPT JSON, prompt file (lines or JSONL \"prompt\"), or trace JSONL");
  auto* num_prompts =
      cmd->add_option("--num-prompts", o.workload.num_prompts, "requests per run (count bound)")
          ->capture_default_str();
  cmd->add_option("--seed", o.workload.seed, "seed of the workload and the arrival process")
      ->capture_default_str();
  cmd->add_option("--random-input-len", o.workload.random_input_len, "prompt tokens (random)")
      ->capture_default_str();
  cmd->add_option("--random-output-len", o.workload.random_output_len, "output tokens (random)")
      ->capture_default_str();
  cmd->add_option("--random-range-ratio", o.workload.random_range_ratio,
                  "lengths uniform in [L(1-r), L(1+r)], r in [0, 1)")
      ->capture_default_str();
  cmd->add_option("--random-prefix-len", o.workload.random_prefix_len,
                  "shared prefix tokens before each random prompt")
      ->capture_default_str();
  cmd->add_option("--sharegpt-output-len", o.workload.sharegpt_output_len,
                  "fixed output length for ShareGPT (0 = the dataset's)");
  cmd->add_option("--custom-output-len", o.workload.custom_output_len,
                  "output tokens per text-file prompt")
      ->capture_default_str();
  cmd->add_option("--num-clusters", o.workload.num_clusters,
                  "clustered: domain clusters (0 = the model's expert_clusters)");
  cmd->add_option("--cluster-weights", o.workload.cluster_weights,
                  "clustered: relative weight of each cluster (comma-separated)")
      ->delimiter(',');
  cmd->add_option("--trace-block-size", o.workload.trace_block_size, "trace: tokens per hash id")
      ->capture_default_str();
  cmd->add_option("--trace-time-scale", o.run.trace_time_scale,
                  "trace: multiply timestamps (0.5 = twice as fast)")
      ->capture_default_str();
  cmd->add_option("--tokenizer", o.tokenizer_dir,
                  "model directory whose tokenizer.json tokenizes text datasets locally");
  cmd->add_flag("--ignore-eos", o.workload.ignore_eos,
                "ignore EOS on every request (fixed-length datasets always do)");
  cmd->add_option("--temperature", o.run.temperature, "sampling temperature (0 = greedy)")
      ->capture_default_str();
  // Arrivals and bounds.
  cmd->add_option("--request-rate", f->request_rate,
                  "requests/s, gamma arrivals; inf = all at once")
      ->capture_default_str();
  cmd->add_option("--burstiness", o.run.arrival.burstiness,
                  "gamma shape: 1 = Poisson, < 1 burstier, > 1 more regular")
      ->capture_default_str();
  cmd->add_option("--max-concurrency", o.run.max_concurrency,
                  "cap on requests in flight (0 = none)");
  cmd->add_option("--concurrency", o.run.concurrency,
                  "closed loop: keep this many requests in flight");
  cmd->add_option("--ramp-up-strategy", o.run.arrival.ramp_up_strategy, "linear | exponential")
      ->check(CLI::IsMember({"linear", "exponential"}));
  cmd->add_option("--ramp-up-start-rps", o.run.arrival.ramp_up_start_rps, "ramp-up start rate");
  cmd->add_option("--ramp-up-end-rps", o.run.arrival.ramp_up_end_rps, "ramp-up end rate");
  cmd->add_option("--num-warmups", o.run.num_warmups, "warm-up requests (not measured)")
      ->capture_default_str();
  cmd->add_option("--duration", o.run.duration_s,
                  "time bound in seconds: no request is released after it (0 = none)");
  cmd->add_option("--request-timeout", o.run.request_timeout_s,
                  "deadline of every request, seconds")
      ->capture_default_str();
  cmd->add_option("--release-spin-us", f->release_spin_us,
                  "poll (not sleep) this close to a scheduled release, for exact arrival times")
      ->capture_default_str();
  cmd->add_flag("--no-perf-metrics", f->no_perf_metrics,
                "do not ask the server for PerfMetrics (no TTFT split)");
  // Metrics.
  cmd->add_option("--goodput", o.goodput, "SLOs in ms: ttft:MS tpot:MS e2el:MS")->expected(1, 3);
  cmd->add_option("--metric-percentiles", o.metric_percentiles,
                  "extra percentiles (comma-separated; 50/90/95/99 are always reported)")
      ->delimiter(',');
  // Sweeps.
  cmd->add_option("--sweep-rates", f->sweep_rates, "run one point per rate (comma-separated)")
      ->delimiter(',');
  cmd->add_flag("--capacity-search", o.capacity_search,
                "binary-search the highest rate with SLO attainment >= --slo-attainment");
  cmd->add_option("--capacity-min-rate", o.capacity_min_rate, "known-good lower bound (req/s)");
  cmd->add_option("--capacity-max-rate", o.capacity_max_rate, "upper bound (req/s)");
  cmd->add_option("--capacity-iterations", o.capacity_iterations, "bisection steps")
      ->capture_default_str();
  cmd->add_option("--slo-attainment", o.slo_attainment, "capacity target fraction")
      ->capture_default_str();
  // Output.
  cmd->add_option("--json", o.json_path, "write the result (or all sweep points) as JSON");
  cmd->add_option("--raw", o.raw_path, "write one JSON line per request");
  cmd->add_option("--label", o.label, "label stored in the result");
  cmd->add_flag("--no-progress", f->no_progress, "no progress bar on stderr");
  return [f, num_prompts]() {
    f->o.num_prompts_given = num_prompts->count() > 0;
    Status status = Prepare(*f);
    if (status.ok()) status = bench::RunBenchServe(f->o, std::cout).status();
    if (!status.ok()) {
      std::cerr << "moeserve bench serve: " << status.message() << "\n";
      return 1;
    }
    return 0;
  };
}

}  // namespace moe::app
