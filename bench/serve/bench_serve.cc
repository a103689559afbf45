#include "bench/serve/bench_serve.h"

#include <cmath>
#include <fstream>
#include <limits>

#include "absl/strings/str_format.h"
#include "bench/serve/report.h"
#include "model/tokenizer_loader.h"

namespace moe::bench {

Status BenchServeOptions::Validate() const {
  MOE_RETURN_IF_ERROR(target.Validate());
  MOE_RETURN_IF_ERROR(workload.Validate());
  MOE_RETURN_IF_ERROR(run.arrival.Validate());
  MOE_ASSIGN_OR_RETURN(SloSpec slo, SloSpec::Parse(goodput));
  if (run.concurrency < 0 || run.max_concurrency < 0) {
    return InvalidArgument("--concurrency and --max-concurrency must be >= 0");
  }
  if (run.concurrency > 0 && (run.arrival.timed() || !sweep_rates.empty() || capacity_search)) {
    return InvalidArgument(
        "--concurrency runs a closed loop: it cannot be combined with a finite --request-rate, a "
        "ramp-up, --sweep-rates or --capacity-search (use --max-concurrency to cap an open loop)");
  }
  if (!sweep_rates.empty() && capacity_search) {
    return InvalidArgument("--sweep-rates and --capacity-search are exclusive");
  }
  for (double r : sweep_rates) {
    if (!(r > 0)) return InvalidArgument("--sweep-rates: every rate must be > 0 (or inf)");
  }
  if ((!sweep_rates.empty() || capacity_search) && run.arrival.has_ramp_up()) {
    return InvalidArgument("--ramp-up-strategy cannot be combined with a sweep or capacity search");
  }
  if (capacity_search) {
    if (slo.empty()) {
      return InvalidArgument("--capacity-search needs SLOs: --goodput ttft:MS tpot:MS e2el:MS");
    }
    if (!(capacity_max_rate > 0) || !std::isfinite(capacity_max_rate)) {
      return InvalidArgument("--capacity-search needs a finite --capacity-max-rate > 0");
    }
    if (capacity_min_rate < 0 || capacity_min_rate >= capacity_max_rate) {
      return InvalidArgument("--capacity-min-rate must be in [0, --capacity-max-rate)");
    }
    if (capacity_iterations < 1 || capacity_iterations > 50) {
      return InvalidArgument("--capacity-iterations must be in [1, 50]");
    }
  }
  if (!(slo_attainment > 0 && slo_attainment <= 1)) {
    return InvalidArgument("--slo-attainment must be in (0, 1]");
  }
  if (run.duration_s < 0) return InvalidArgument("--duration must be >= 0");
  if (!(run.request_timeout_s > 0)) return InvalidArgument("--request-timeout must be > 0");
  if (run.num_warmups < 0) return InvalidArgument("--num-warmups must be >= 0");
  if (!(run.trace_time_scale > 0)) return InvalidArgument("--trace-time-scale must be > 0");
  if (workload.num_prompts < 1 && num_prompts_given) {
    return InvalidArgument("--num-prompts must be >= 1");
  }
  for (double p : metric_percentiles) {
    if (!(p >= 0 && p <= 100)) return InvalidArgument("--metric-percentiles must be in [0, 100]");
  }
  return OkStatus();
}

int64_t RequestsForPoint(const BenchServeOptions& o, double rate) {
  // A trace replays its file (or its first --num-prompts lines).
  if (o.workload.dataset_name == "trace") {
    return o.num_prompts_given ? o.workload.num_prompts : std::numeric_limits<int64_t>::max();
  }
  if (o.num_prompts_given || o.run.duration_s <= 0) return o.workload.num_prompts;
  if (o.run.concurrency <= 0 && std::isfinite(rate) && !o.run.arrival.has_ramp_up()) {
    return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(rate * o.run.duration_s)));
  }
  if (o.run.arrival.has_ramp_up()) return o.workload.num_prompts;
  return std::numeric_limits<int64_t>::max();
}

namespace {

struct PointResult {
  double rate = 0;
  BenchMetrics metrics;
  nlohmann::ordered_json json;
};

class Session {
 public:
  Session(const BenchServeOptions& o, std::ostream& out, LoadDriver* driver, const Workload& w,
          const ModelFacts& facts, const SloSpec& slo)
      : o_(o), out_(out), driver_(driver), workload_(w), facts_(facts) {
    metrics_options_.slo = slo;
    metrics_options_.percentiles = o.metric_percentiles;
    if (!o.raw_path.empty()) raw_.open(o.raw_path);
  }

  Status RawOk() const {
    if (!o_.raw_path.empty() && !raw_) return DataLoss("--raw: cannot write '", o_.raw_path, "'");
    return OkStatus();
  }

  // Runs one point at `rate` (the options' arrival otherwise); `index` >= 0 tags sweep points.
  StatusOr<PointResult> RunPoint(double rate, int index, bool print_table) {
    RunOptions run = o_.run;
    run.arrival.request_rate = rate;
    run.num_requests = RequestsForPoint(o_, rate);
    run.label =
        index >= 0 ? absl::StrFormat("rate %g", rate) : (o_.label.empty() ? "bench" : o_.label);
    run.request_id_prefix = index >= 0 ? absl::StrFormat("p%d", index) : "bench";
    MOE_ASSIGN_OR_RETURN(RunResult result, driver_->Run(workload_, run));
    PointResult p;
    p.rate = rate;
    p.metrics = ComputeMetrics(result.records, result.duration_s, metrics_options_);
    PointInfo info;
    info.label = o_.label;
    info.api = o_.target.api == Api::kNative ? "native" : "kserve";
    info.model_id = facts_.served_model_name;
    info.dataset = o_.workload.dataset_name;
    info.request_rate = run.concurrency > 0 ? std::numeric_limits<double>::infinity() : rate;
    info.burstiness = run.arrival.burstiness;
    info.ramp_up_strategy = run.arrival.ramp_up_strategy;
    info.ramp_up_start_rps = run.arrival.ramp_up_start_rps;
    info.ramp_up_end_rps = run.arrival.ramp_up_end_rps;
    info.max_concurrency = run.max_concurrency;
    info.concurrency = run.concurrency;
    info.num_prompts = static_cast<int64_t>(result.records.size());
    info.slo = metrics_options_.slo.ToString();
    p.json = ResultJson(p.metrics, info);
    if (result.stopped_by_duration) p.json["stopped_by_duration"] = true;
    p.json["harness_cpu_seconds"] = result.harness_cpu_s;
    p.json["harness_cpu_utilization"] =
        result.duration_s > 0 ? result.harness_cpu_s / result.duration_s : 0.0;
    if (o_.run.num_warmups > 0) p.json["warmups_completed"] = result.warmups_completed;
    if (print_table) {
      PrintResultTable(out_, p.metrics, info);
      out_ << absl::StrFormat(
          "Harness CPU: %.2f s over %.2f s (%.0f%% of one core)\n", result.harness_cpu_s,
          result.duration_s,
          result.duration_s > 0 ? 100 * result.harness_cpu_s / result.duration_s : 0.0);
    }
    if (raw_.is_open()) WriteRawRecords(raw_, result.records, index);
    return p;
  }

  bool Passes(const PointResult& p) const { return p.metrics.slo_attainment >= o_.slo_attainment; }

  void PrintSummary(const std::vector<PointResult>& points) {
    out_ << absl::StrFormat("%10s %10s %12s %11s %11s %11s %11s %9s\n", "rate", "req/s",
                            "out tok/s", "p50 TTFT", "p99 TTFT", "p50 TPOT", "p99 TPOT",
                            metrics_options_.slo.empty() ? "failed" : "SLO att.");
    for (const PointResult& p : points) {
      const BenchMetrics& m = p.metrics;
      out_ << absl::StrFormat(
          "%10s %10.2f %12.1f %9.2fms %9.2fms %9.2fms %9.2fms %9s\n",
          std::isfinite(p.rate) ? absl::StrFormat("%.3g", p.rate) : std::string("inf"),
          m.request_throughput, m.output_throughput, m.ttft.median, m.ttft.p99, m.tpot.median,
          m.tpot.p99,
          metrics_options_.slo.empty() ? absl::StrFormat("%d", m.failed)
                                       : absl::StrFormat("%.1f%%", m.slo_attainment * 100));
    }
  }

 private:
  const BenchServeOptions& o_;
  std::ostream& out_;
  LoadDriver* driver_;
  const Workload& workload_;
  const ModelFacts& facts_;
  MetricsOptions metrics_options_;
  std::ofstream raw_;
};

}  // namespace

StatusOr<nlohmann::ordered_json> RunBenchServe(const BenchServeOptions& o, std::ostream& out) {
  MOE_RETURN_IF_ERROR(o.Validate());
  MOE_ASSIGN_OR_RETURN(SloSpec slo, SloSpec::Parse(o.goodput));
  MOE_ASSIGN_OR_RETURN(std::unique_ptr<LoadDriver> driver, LoadDriver::Connect(o.target));
  MOE_ASSIGN_OR_RETURN(ModelFacts facts, driver->GetModelInfo());
  std::unique_ptr<model::Tokenizer> tokenizer;
  if (!o.tokenizer_dir.empty()) {
    MOE_ASSIGN_OR_RETURN(tokenizer, model::LoadTokenizer(o.tokenizer_dir));
    if (tokenizer == nullptr) {
      return NotFound("--tokenizer: '", o.tokenizer_dir, "' has no tokenizer.json");
    }
  }
  WorkloadOptions workload_options = o.workload;
  if (workload_options.dataset_name == "trace" && !o.num_prompts_given) {
    workload_options.num_prompts = 0;  // the whole file
  }
  MOE_ASSIGN_OR_RETURN(Workload workload, BuildWorkload(workload_options, facts, tokenizer.get()));
  out << absl::StrFormat(
      "moeserve bench serve: %s (%s API), model '%s' (vocab %d%s), dataset %s, %d distinct "
      "prompts\n",
      o.target.address(), o.target.api == Api::kNative ? "native" : "kserve",
      facts.served_model_name, facts.vocab_size,
      facts.expert_clusters > 0 ? absl::StrFormat(", %d expert clusters", facts.expert_clusters)
                                : std::string(),
      o.workload.dataset_name, workload.size());
  Session session(o, out, driver.get(), workload, facts, slo);
  MOE_RETURN_IF_ERROR(session.RawOk());

  nlohmann::ordered_json result;
  if (o.sweep_rates.empty() && !o.capacity_search) {
    MOE_ASSIGN_OR_RETURN(PointResult p, session.RunPoint(o.run.arrival.request_rate, -1, true));
    result = std::move(p.json);
  } else if (!o.sweep_rates.empty()) {
    std::vector<PointResult> points;
    for (size_t i = 0; i < o.sweep_rates.size(); ++i) {
      MOE_ASSIGN_OR_RETURN(PointResult p,
                           session.RunPoint(o.sweep_rates[i], static_cast<int>(i), true));
      points.push_back(std::move(p));
    }
    out << "================ Sweep summary ===================\n";
    session.PrintSummary(points);
    result["mode"] = "sweep";
    if (!slo.empty()) result["goodput_slo"] = slo.ToString();
    result["points"] = nlohmann::ordered_json::array();
    for (PointResult& p : points) result["points"].push_back(std::move(p.json));
  } else {
    // Sarathi-Serve-style capacity search: the highest rate whose SLO attainment holds.
    std::vector<PointResult> points;
    int index = 0;
    auto run = [&](double rate) -> StatusOr<bool> {
      MOE_ASSIGN_OR_RETURN(PointResult p, session.RunPoint(rate, index++, false));
      const bool pass = session.Passes(p);
      out << absl::StrFormat("capacity search: rate %.4g req/s -> SLO attainment %.1f%% (%s)\n",
                             rate, p.metrics.slo_attainment * 100, pass ? "pass" : "fail");
      p.json["slo_attainment_target"] = o.slo_attainment;
      p.json["passed"] = pass;
      points.push_back(std::move(p));
      return pass;
    };
    double lo = o.capacity_min_rate;
    double hi = o.capacity_max_rate;
    double capacity = 0;
    std::string note;
    MOE_ASSIGN_OR_RETURN(bool hi_pass, run(hi));
    if (hi_pass) {
      capacity = hi;
      note = "the maximum rate passes: raise --capacity-max-rate to find the limit";
    } else {
      bool lo_ok = true;
      if (lo > 0) {
        MOE_ASSIGN_OR_RETURN(lo_ok, run(lo));
        if (!lo_ok) note = "even --capacity-min-rate misses the SLO attainment target";
      }
      if (lo_ok) {
        capacity = lo;
        for (int it = 0; it < o.capacity_iterations; ++it) {
          if ((hi - lo) / hi < o.capacity_tolerance) break;
          const double mid = 0.5 * (lo + hi);
          MOE_ASSIGN_OR_RETURN(bool pass, run(mid));
          if (pass) {
            lo = mid;
            capacity = mid;
          } else {
            hi = mid;
          }
        }
      }
    }
    out << "=========== Capacity search summary ==============\n";
    session.PrintSummary(points);
    out << absl::StrFormat("capacity: %.4g req/s at >= %.0f%% SLO attainment (%s)\n", capacity,
                           o.slo_attainment * 100, slo.ToString());
    if (!note.empty()) out << "note: " << note << "\n";
    result["mode"] = "capacity_search";
    result["goodput_slo"] = slo.ToString();
    result["slo_attainment_target"] = o.slo_attainment;
    result["capacity_request_rate"] = capacity;
    if (!note.empty()) result["note"] = note;
    result["points"] = nlohmann::ordered_json::array();
    for (PointResult& p : points) result["points"].push_back(std::move(p.json));
  }
  if (!o.json_path.empty()) MOE_RETURN_IF_ERROR(WriteJsonFile(o.json_path, result));
  return result;
}

}  // namespace moe::bench
