#include "serving/metrics_telemetry.h"

#include <algorithm>
#include <chrono>

#include "core/clock.h"
#include "core/logging.h"

namespace moe::serving {

Status TelemetryOptions::Validate() const {
  if (metrics && (metrics_port < 0 || metrics_port > 65535)) {
    return InvalidArgument("--metrics-port must be in [0, 65535], got ", metrics_port);
  }
  if (max_expert_series < 1) {
    return InvalidArgument("--metrics-max-expert-series must be >= 1, got ", max_expert_series);
  }
  if (log_max_bytes < 0)
    return InvalidArgument("--log-max-bytes must be >= 0, got ", log_max_bytes);
  if (log_max_files < 1)
    return InvalidArgument("--log-max-files must be >= 1, got ", log_max_files);
  if (!(engine_stats_interval_s >= 0)) {
    return InvalidArgument("--engine-stats-interval must be >= 0, got ", engine_stats_interval_s);
  }
  return OkStatus();
}

Telemetry::Telemetry(const TelemetryOptions& options, const RequestGateway* gateway)
    : options_(options), gateway_(gateway) {}

StatusOr<std::shared_ptr<Telemetry>> Telemetry::Create(const TelemetryOptions& options,
                                                       const RequestGateway* gateway) {
  MOE_RETURN_IF_ERROR(options.Validate());
  auto t = std::shared_ptr<Telemetry>(new Telemetry(options, gateway));
  const ModelInfo& info = gateway->info();
  t->num_experts_ = info.config.num_experts;
  for (int l = 0; l < info.config.num_layers; ++l) {
    if (info.config.num_experts > 0 && info.config.IsMoeLayer(l)) t->moe_layer_ids_.push_back(l);
  }
  t->interval_.start_ns = MonotonicNanos();
  t->interval_.expert_tokens.assign(t->moe_layer_ids_.size() * t->num_experts_, 0);
  if (options.metrics) {
    MetricsOptions mo;
    mo.host = options.metrics_host;
    mo.port = options.metrics_port;
    mo.model_name = info.served_model_name;
    mo.max_model_len = info.max_context > 0 ? info.max_context : 4096;
    mo.num_moe_layers = static_cast<int>(t->moe_layer_ids_.size());
    mo.num_experts = t->num_experts_;
    mo.moe_layer_ids = t->moe_layer_ids_;
    mo.max_expert_series = options.max_expert_series;
    Telemetry* raw = t.get();
    mo.on_scrape = [raw] { raw->RefreshReady(); };
    MOE_ASSIGN_OR_RETURN(t->metrics_, ServingMetrics::Create(mo));
    t->RefreshReady();
  }
  if (!options.log_file.empty()) {
    RequestLogOptions lo;
    lo.path = options.log_file;
    lo.max_bytes = options.log_max_bytes;
    lo.max_files = options.log_max_files;
    MOE_ASSIGN_OR_RETURN(t->log_, RequestLog::Open(lo));
    if (options.engine_stats_interval_s > 0) {
      t->thread_ = std::thread([raw = t.get()] { raw->Run(); });
    }
  }
  return t;
}

std::shared_ptr<Telemetry> Telemetry::Of(const RequestGateway& gateway) {
  return gateway.telemetry();
}

Telemetry::~Telemetry() {
  Stop();
  // The exposer may still run a scrape that calls RefreshReady: close it first.
  metrics_.reset();
}

void Telemetry::Stop() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    if (stopped_) return;
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (log_ != nullptr && options_.engine_stats_interval_s > 0) WriteEngineStats();
  if (log_ != nullptr) log_->Flush();
  std::lock_guard<std::mutex> lock(stop_mu_);
  stopped_ = true;
  gateway_ = nullptr;
}

void Telemetry::RefreshReady() {
  std::lock_guard<std::mutex> lock(stop_mu_);
  if (metrics_ == nullptr) return;
  const bool ready = gateway_ != nullptr && gateway_->ready() && !gateway_->draining();
  metrics_->SetEngineReady(ready);
}

void Telemetry::Run() {
  std::unique_lock<std::mutex> lock(stop_mu_);
  const auto period = std::chrono::duration<double>(options_.engine_stats_interval_s);
  auto next = std::chrono::steady_clock::now() + period;
  while (!stop_) {
    if (stop_cv_.wait_until(lock, std::chrono::time_point_cast<std::chrono::nanoseconds>(next),
                            [this] { return stop_; })) {
      break;
    }
    next += std::chrono::duration_cast<std::chrono::nanoseconds>(period);
    lock.unlock();
    WriteEngineStats();
    lock.lock();
  }
}

void Telemetry::RequestFinished(RequestRecord record) {
  if (record.ended_ns == 0) record.ended_ns = WallNanos();
  const RequestDurations d = ComputeDurations(record);
  if (metrics_ != nullptr) metrics_->ObserveRequest(record, d);
  if (log_ != nullptr) log_->Write(RequestFinishedJson(record, d));
  requests_finished_.fetch_add(1, std::memory_order_relaxed);
}

void Telemetry::StreamOpened(ApiKind api, int rpc) {
  streams_open_.fetch_add(1, std::memory_order_relaxed);
  if (metrics_ != nullptr) metrics_->StreamOpened(api, rpc);
}

void Telemetry::StreamClosed(ApiKind api, int rpc) {
  streams_open_.fetch_sub(1, std::memory_order_relaxed);
  if (metrics_ != nullptr) metrics_->StreamClosed(api, rpc);
}

void Telemetry::OnStep(const engine::StepStats& st) {
  // Expert load of this step from the routing trace.
  ExpertLoadDigest digest;
  const batching::RoutingTrace* trace = st.routing;
  const int experts = num_experts_;
  const bool routed = trace != nullptr && experts > 0 && trace->top_k > 0 &&
                      trace->num_tokens > 0 && !trace->moe_layers.empty();
  if (routed) {
    const int layers = static_cast<int>(trace->moe_layers.size());
    const size_t per_layer = static_cast<size_t>(trace->num_tokens) * trace->top_k;
    step_tokens_.assign(static_cast<size_t>(layers) * experts, 0);
    double distinct = 0;
    double imbalance = 0;
    for (int l = 0; l < layers && (l + 1) * per_layer <= trace->expert_ids.size(); ++l) {
      int32_t* counts = step_tokens_.data() + static_cast<size_t>(l) * experts;
      const int32_t* ids = trace->expert_ids.data() + l * per_layer;
      int64_t total = 0;
      for (size_t i = 0; i < per_layer; ++i) {
        const int32_t e = ids[i];
        if (e >= 0 && e < experts) {
          ++counts[e];
          ++total;
        }
      }
      int32_t max = 0;
      int hit = 0;
      for (int e = 0; e < experts; ++e) {
        max = std::max(max, counts[e]);
        hit += counts[e] > 0;
      }
      distinct += hit;
      imbalance += total > 0 ? max / (static_cast<double>(total) / experts) : 0.0;
    }
    digest.tokens = step_tokens_.data();
    digest.layers = layers;
    digest.experts = experts;
    digest.distinct = distinct / layers;
    digest.imbalance = imbalance / layers;
  }
  if (metrics_ != nullptr) metrics_->ObserveStep(st, routed ? &digest : nullptr);
  if (log_ == nullptr) return;
  std::lock_guard<std::mutex> lock(interval_mu_);
  Interval& in = interval_;
  ++in.steps;
  ++in.steps_by_phase[static_cast<int>(st.phase)];
  in.batch_sum += st.num_seqs;
  in.max_batch = std::max(in.max_batch, st.num_seqs);
  in.step_ns_sum += st.step_ns;
  in.prompt_tokens += st.num_prompt_tokens;
  in.generated_tokens += st.num_generated_tokens;
  if (routed) {
    ++in.routed_steps;
    in.distinct_sum += digest.distinct;
    in.imbalance_sum += digest.imbalance;
    if (in.expert_tokens.size() == step_tokens_.size()) {
      for (size_t i = 0; i < step_tokens_.size(); ++i) in.expert_tokens[i] += step_tokens_[i];
    }
  }
  last_ = st;
  last_.itl_ns = {};
  last_.routing = nullptr;
}

void Telemetry::WriteEngineStats() {
  if (log_ == nullptr) return;
  EngineStatsRecord r;
  const int64_t now = MonotonicNanos();
  r.wall_ns = WallNanos();
  Interval in;
  engine::StepStats last;
  int64_t queried = 0;
  int64_t hits = 0;
  int64_t preemptions = 0;
  {
    std::lock_guard<std::mutex> lock(interval_mu_);
    in = interval_;
    last = last_;
    queried = last.prefix_queried_tokens - interval_prefix_queried_;
    hits = last.prefix_hit_tokens - interval_prefix_hits_;
    preemptions = last.total_preemptions - interval_preemptions_;
    interval_prefix_queried_ = last.prefix_queried_tokens;
    interval_prefix_hits_ = last.prefix_hit_tokens;
    interval_preemptions_ = last.total_preemptions;
    const size_t n = interval_.expert_tokens.size();
    interval_ = Interval{};
    interval_.start_ns = now;
    interval_.expert_tokens.assign(n, 0);
  }
  r.interval_s = static_cast<double>(now - in.start_ns) * 1e-9;
  r.num_running = last.num_running;
  r.num_waiting = last.num_waiting;
  r.num_waiting_tokens = last.num_waiting_tokens;
  r.kv_usage = last.kv_usage;
  if (r.interval_s > 0) {
    r.prompt_tokens_per_s = static_cast<double>(in.prompt_tokens) / r.interval_s;
    r.generation_tokens_per_s = static_cast<double>(in.generated_tokens) / r.interval_s;
  }
  if (queried > 0) r.prefix_cache_hit_rate = static_cast<double>(hits) / queried;
  r.prefix_cache_hit_rate_total =
      last.prefix_queried_tokens > 0
          ? static_cast<double>(last.prefix_hit_tokens) / last.prefix_queried_tokens
          : 0.0;
  r.preemptions = preemptions;
  r.total_preemptions = last.total_preemptions;
  r.steps = in.steps;
  r.steps_prefill = in.steps_by_phase[static_cast<int>(engine::StepPhase::kPrefill)];
  r.steps_decode = in.steps_by_phase[static_cast<int>(engine::StepPhase::kDecode)];
  r.steps_mixed = in.steps_by_phase[static_cast<int>(engine::StepPhase::kMixed)];
  if (in.steps > 0) {
    r.mean_batch_size = static_cast<double>(in.batch_sum) / in.steps;
    r.mean_step_ms = static_cast<double>(in.step_ns_sum) * 1e-6 / in.steps;
  }
  r.max_batch_size = in.max_batch;
  r.requests_finished = requests_finished_.exchange(0, std::memory_order_relaxed);
  r.streams_open = streams_open_.load(std::memory_order_relaxed);
  if (in.routed_steps > 0) {
    r.distinct_experts_per_step = in.distinct_sum / in.routed_steps;
    r.expert_load_imbalance = in.imbalance_sum / in.routed_steps;
    const size_t layers = moe_layer_ids_.size();
    if (num_experts_ > 0 && in.expert_tokens.size() == layers * num_experts_) {
      r.expert_tokens.resize(layers);
      for (size_t l = 0; l < layers; ++l) {
        r.expert_tokens[l].assign(in.expert_tokens.begin() + l * num_experts_,
                                  in.expert_tokens.begin() + (l + 1) * num_experts_);
      }
    }
  }
  log_->Write(EngineStatsJson(r));
}

}  // namespace moe::serving
