#include "serving/metrics.h"

#include "serving/metrics_http_server.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <sstream>
#include <thread>

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "absl/strings/str_cat.h"

namespace moe::serving {

namespace pm = prometheus;

namespace {

constexpr int kNumApis = 2;     // native, kserve
constexpr int kNumReasons = 3;  // stop, length, abort
constexpr int kNumCodes = 17;   // gRPC status codes 0..16
constexpr int kNumRpcs = 3;
constexpr const char* kReasonNames[kNumReasons] = {"stop", "length", "abort"};
constexpr const char* kRpcNames[kNumRpcs] = {"Generate", "ModelInfer", "ModelStreamInfer"};
constexpr const char* kCodeNames[kNumCodes] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

int ApiIndex(ApiKind api) { return api == ApiKind::kNative ? 0 : 1; }
const char* ApiName(int index) { return index == 0 ? "native" : "kserve"; }

// Runs a callback at the start of every scrape (registered before the registry).
class ScrapeHook final : public pm::Collectable {
 public:
  explicit ScrapeHook(std::function<void()> fn) : fn_(std::move(fn)) {}
  std::vector<pm::MetricFamily> Collect() const override {
    if (fn_) fn_();
    return {};
  }

 private:
  std::function<void()> fn_;
};

// moeserve_expert_tokens_total{layer,expert}: plain atomics written by the engine thread and
// turned into a counter family at scrape time (thousands of prometheus::Counter objects would
// cost memory and a CAS loop per update).
class ExpertTokens final : public pm::Collectable {
 public:
  explicit ExpertTokens(const MetricsOptions& o)
      : model_name_(o.model_name),
        layers_(o.num_moe_layers),
        experts_(o.num_experts),
        max_series_(std::max(1, o.max_expert_series)),
        layer_ids_(o.moe_layer_ids),
        counts_(new std::atomic<uint64_t>[static_cast<size_t>(layers_) * experts_]) {
    if (static_cast<int>(layer_ids_.size()) != layers_) {
      layer_ids_.resize(layers_);
      for (int l = 0; l < layers_; ++l) layer_ids_[l] = l;
    }
    for (size_t i = 0; i < static_cast<size_t>(layers_) * experts_; ++i) counts_[i] = 0;
  }

  // Engine thread only: a single writer, so a relaxed load + store replaces the locked
  // read-modify-write (scrapes read a value that is at most one step old).
  void Add(const ExpertLoadDigest& d) {
    if (d.layers != layers_ || d.experts != experts_) return;
    const size_t n = static_cast<size_t>(layers_) * experts_;
    for (size_t i = 0; i < n; ++i) {
      if (d.tokens[i] != 0) {
        counts_[i].store(counts_[i].load(std::memory_order_relaxed) + d.tokens[i],
                         std::memory_order_relaxed);
      }
    }
  }

  std::vector<pm::MetricFamily> Collect() const override {
    pm::MetricFamily family;
    family.name = "moeserve_expert_tokens_total";
    family.help = "Tokens routed to each expert of each MoE layer (top-k assignments)";
    family.type = pm::MetricType::Counter;
    if (layers_ == 0 || experts_ == 0) return {family};
    auto add = [&](const std::string& layer, const std::string& expert, double value) {
      pm::ClientMetric m;
      m.label = {{"expert", expert}, {"layer", layer}, {"model_name", model_name_}};
      m.counter.value = value;
      family.metric.push_back(std::move(m));
    };
    const bool per_layer = static_cast<int64_t>(layers_) * experts_ <= max_series_;
    const int shown = std::min(experts_, per_layer ? experts_ : max_series_ - 1);
    if (per_layer) {
      for (int l = 0; l < layers_; ++l) {
        for (int e = 0; e < experts_; ++e) {
          add(absl::StrCat(layer_ids_[l]), absl::StrCat(e),
              static_cast<double>(
                  counts_[static_cast<size_t>(l) * experts_ + e].load(std::memory_order_relaxed)));
        }
      }
      return {family};
    }
    // Over the cap: summed over layers, experts past the cap folded together.
    std::vector<double> per_expert(experts_, 0.0);
    for (int l = 0; l < layers_; ++l) {
      for (int e = 0; e < experts_; ++e) {
        per_expert[e] += static_cast<double>(
            counts_[static_cast<size_t>(l) * experts_ + e].load(std::memory_order_relaxed));
      }
    }
    double other = 0;
    for (int e = 0; e < experts_; ++e) {
      if (e < shown || shown == experts_) {
        add("all", absl::StrCat(e), per_expert[e]);
      } else {
        other += per_expert[e];
      }
    }
    if (shown < experts_) add("all", "other", other);
    return {family};
  }

 private:
  std::string model_name_;
  int layers_;
  int experts_;
  int max_series_;
  std::vector<int> layer_ids_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
};

}  // namespace

Status MetricsOptions::Validate() const {
  if (serve_http && (port < 0 || port > 65535)) {
    return InvalidArgument("--metrics-port must be in [0, 65535], got ", port);
  }
  if (num_moe_layers < 0 || num_experts < 0) return InvalidArgument("negative expert dimensions");
  if (max_expert_series < 1) {
    return InvalidArgument("--metrics-max-expert-series must be >= 1, got ", max_expert_series);
  }
  return OkStatus();
}

std::vector<double> TtftBuckets() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25,  0.5,   0.75,
          1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
}

std::vector<double> InterTokenBuckets() {
  return {0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1,  0.15, 0.2,
          0.3,   0.4,   0.5,   0.75,  1.0,    2.5,  5.0,   7.5,  10.0,  20.0, 40.0, 80.0};
}

std::vector<double> RequestLatencyBuckets() {
  return {0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
          30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
}

std::vector<double> TokenCountBuckets(int max_value) {
  std::vector<double> buckets;
  for (int64_t scale = 1;; scale *= 10) {
    for (int m : {1, 2, 5}) {
      const int64_t v = m * scale;
      if (v > std::max(max_value, 1)) return buckets;
      buckets.push_back(static_cast<double>(v));
    }
  }
}

std::vector<double> IterationTokenBuckets() {
  return {1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384};
}

std::vector<double> StepTimeBuckets() {
  return {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
          0.025,   0.05,     0.1,     0.25,   0.5,     1.0,    2.5,   5.0,    10.0};
}

struct ServingMetrics::Impl {
  MetricsOptions options;
  std::shared_ptr<pm::Registry> registry = std::make_shared<pm::Registry>();
  std::shared_ptr<ScrapeHook> hook;
  std::shared_ptr<ExpertTokens> experts;
  std::unique_ptr<MetricsHttpServer> http;
  int port = -1;

  struct PerApi {
    pm::Histogram* ttft = nullptr;
    pm::Histogram* tpot = nullptr;
    pm::Histogram* e2e = nullptr;
    pm::Histogram* queue = nullptr;
    pm::Histogram* prefill = nullptr;
    pm::Histogram* decode = nullptr;
    pm::Histogram* inference = nullptr;
    pm::Histogram* prompt_tokens = nullptr;
    pm::Histogram* generation_tokens = nullptr;
    pm::Histogram* max_tokens = nullptr;
    pm::Counter* success[kNumReasons] = {};
    std::atomic<pm::Counter*> failure[kNumCodes] = {};
  };
  PerApi api[kNumApis];
  pm::Family<pm::Counter>* failure_family = nullptr;
  std::mutex failure_mu;

  pm::Gauge* running = nullptr;
  pm::Gauge* waiting = nullptr;
  pm::Gauge* kv_usage = nullptr;
  pm::Gauge* waiting_tokens = nullptr;
  pm::Gauge* ready = nullptr;
  pm::Gauge* imbalance = nullptr;
  pm::Gauge* distinct = nullptr;
  pm::Gauge* streams[kNumApis][kNumRpcs] = {};
  pm::Counter* prompt_tokens = nullptr;
  pm::Counter* generation_tokens = nullptr;
  pm::Counter* prefix_queries = nullptr;
  pm::Counter* prefix_hits = nullptr;
  pm::Counter* preemptions = nullptr;
  pm::Counter* steps = nullptr;
  pm::Histogram* itl = nullptr;
  pm::Histogram* iteration_tokens = nullptr;
  pm::Histogram* step_seconds[3] = {};  // by engine::StepPhase
  pm::Histogram* dispatch = nullptr;
  pm::Histogram* gemm = nullptr;

  // Engine-thread state.
  int64_t last_prefix_queried = 0;
  int64_t last_prefix_hits = 0;
  int64_t last_preemptions = 0;
  std::vector<int64_t> itl_bounds_ns;  // InterTokenBuckets() in ns
  std::vector<int64_t> itl_counts;
  std::vector<double> itl_increments;

  pm::Labels Base() const { return {{"model_name", options.model_name}}; }

  pm::Histogram* Hist(const std::string& name, const std::string& help,
                      const std::vector<double>& buckets, const pm::Labels& labels = {}) {
    return &pm::BuildHistogram().Name(name).Help(help).Labels(Base()).Register(*registry).Add(
        labels, buckets);
  }
  pm::Counter* Count(const std::string& name, const std::string& help) {
    return &pm::BuildCounter().Name(name).Help(help).Labels(Base()).Register(*registry).Add({});
  }
  pm::Gauge* Gauge(const std::string& name, const std::string& help) {
    return &pm::BuildGauge().Name(name).Help(help).Labels(Base()).Register(*registry).Add({});
  }

  void Build() {
    auto& ttft = pm::BuildHistogram()
                     .Name("moeserve_time_to_first_token_seconds")
                     .Help("Time from arrival to the first generated token")
                     .Labels(Base())
                     .Register(*registry);
    auto& tpot = pm::BuildHistogram()
                     .Name("moeserve_request_time_per_output_token_seconds")
                     .Help("Per request: (last token - first token) / (generated tokens - 1)")
                     .Labels(Base())
                     .Register(*registry);
    auto hist = [&](const char* name, const char* help) -> pm::Family<pm::Histogram>& {
      return pm::BuildHistogram().Name(name).Help(help).Labels(Base()).Register(*registry);
    };
    auto& e2e = hist("moeserve_e2e_request_latency_seconds", "Arrival to the engine's finish");
    auto& queue = hist("moeserve_request_queue_time_seconds", "Arrival to first scheduled");
    auto& prefill =
        hist("moeserve_request_prefill_time_seconds", "First scheduled to the first token");
    auto& decode = hist("moeserve_request_decode_time_seconds", "First token to the finish");
    auto& inference =
        hist("moeserve_request_inference_time_seconds", "First scheduled to the finish");
    auto& prompt = hist("moeserve_request_prompt_tokens", "Prompt tokens per request");
    auto& generation = hist("moeserve_request_generation_tokens", "Generated tokens per request");
    auto& max_tokens =
        hist("moeserve_request_params_max_tokens", "The max_tokens requests asked for");
    auto& success = pm::BuildCounter()
                        .Name("moeserve_request_success_total")
                        .Help("Requests that ended OK, by finish reason")
                        .Labels(Base())
                        .Register(*registry);
    failure_family = &pm::BuildCounter()
                          .Name("moeserve_request_failure_total")
                          .Help("Requests that ended with an error, by gRPC code")
                          .Labels(Base())
                          .Register(*registry);
    const std::vector<double> tokens = TokenCountBuckets(options.max_model_len);
    for (int a = 0; a < kNumApis; ++a) {
      const pm::Labels l = {{"api", ApiName(a)}};
      PerApi& p = api[a];
      p.ttft = &ttft.Add(l, TtftBuckets());
      p.tpot = &tpot.Add(l, InterTokenBuckets());
      p.e2e = &e2e.Add(l, RequestLatencyBuckets());
      p.queue = &queue.Add(l, RequestLatencyBuckets());
      p.prefill = &prefill.Add(l, RequestLatencyBuckets());
      p.decode = &decode.Add(l, RequestLatencyBuckets());
      p.inference = &inference.Add(l, RequestLatencyBuckets());
      p.prompt_tokens = &prompt.Add(l, tokens);
      p.generation_tokens = &generation.Add(l, tokens);
      p.max_tokens = &max_tokens.Add(l, tokens);
      for (int r = 0; r < kNumReasons; ++r) {
        p.success[r] = &success.Add({{"api", ApiName(a)}, {"finished_reason", kReasonNames[r]}});
      }
    }

    running = Gauge("moeserve_num_requests_running", "Requests in the running batch");
    waiting = Gauge("moeserve_num_requests_waiting", "Requests waiting to be scheduled");
    kv_usage = Gauge("moeserve_kv_cache_usage_perc", "Fraction of KV cache blocks in use (0-1)");
    waiting_tokens =
        Gauge("moeserve_num_waiting_prompt_tokens", "Prompt tokens of the waiting requests");
    ready = Gauge("moeserve_engine_ready", "1 when the model is loaded and serving");
    imbalance = Gauge("moeserve_expert_load_imbalance",
                      "Last routed step: mean over MoE layers of max / mean tokens per expert");
    distinct = Gauge("moeserve_distinct_experts_per_step",
                     "Last routed step: mean over MoE layers of experts with any token");
    auto& streams_family = pm::BuildGauge()
                               .Name("moeserve_grpc_streams_open")
                               .Help("Open gRPC calls of the generation RPCs")
                               .Labels(Base())
                               .Register(*registry);
    for (int a = 0; a < kNumApis; ++a) {
      for (int r = 0; r < kNumRpcs; ++r) {
        if ((a == 0) != (r == ServingMetrics::kRpcGenerate)) continue;
        streams[a][r] = &streams_family.Add({{"api", ApiName(a)}, {"rpc", kRpcNames[r]}});
      }
    }
    prompt_tokens = Count("moeserve_prompt_tokens_total", "Prompt tokens computed (prefill)");
    generation_tokens = Count("moeserve_generation_tokens_total", "Tokens generated");
    prefix_queries =
        Count("moeserve_prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache");
    prefix_hits =
        Count("moeserve_prefix_cache_hits_total", "Prompt tokens found in the prefix cache");
    preemptions = Count("moeserve_num_preemptions_total", "Preemptions by recompute");
    steps = Count("moeserve_engine_steps_total", "Engine steps run");
    itl = Hist("moeserve_inter_token_latency_seconds",
               "Gap between consecutive tokens of a request", InterTokenBuckets());
    iteration_tokens = Hist("moeserve_iteration_tokens_total", "Tokens computed per engine step",
                            IterationTokenBuckets());
    auto& step_family = hist("moeserve_engine_step_seconds",
                             "Engine step time (schedule, forward, sample, update, publish)");
    for (engine::StepPhase phase :
         {engine::StepPhase::kPrefill, engine::StepPhase::kDecode, engine::StepPhase::kMixed}) {
      step_seconds[static_cast<int>(phase)] = &step_family.Add(
          {{"phase", std::string(engine::StepPhaseName(phase))}}, StepTimeBuckets());
    }
    dispatch = Hist("moeserve_expert_dispatch_seconds",
                    "Per step, summed over MoE layers: token permute + unpermute/combine",
                    StepTimeBuckets());
    gemm = Hist("moeserve_grouped_gemm_seconds",
                "Per step, summed over MoE layers: grouped expert GEMMs (gate/up + down)",
                StepTimeBuckets());
    for (double b : InterTokenBuckets()) itl_bounds_ns.push_back(std::llround(b * 1e9));
    itl_counts.assign(itl_bounds_ns.size() + 1, 0);
    itl_increments.assign(itl_bounds_ns.size() + 1, 0.0);
  }
};

ServingMetrics::ServingMetrics(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ServingMetrics::~ServingMetrics() {
  // Stop serving scrapes before the series go.
  impl_->http.reset();
}

StatusOr<std::unique_ptr<ServingMetrics>> ServingMetrics::Create(const MetricsOptions& options) {
  MOE_RETURN_IF_ERROR(options.Validate());
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->Build();
  impl->hook = std::make_shared<ScrapeHook>(options.on_scrape);
  impl->experts = std::make_shared<ExpertTokens>(options);
  if (options.serve_http) {
    MOE_ASSIGN_OR_RETURN(impl->http,
                         MetricsHttpServer::Start(options.host, options.port,
                                                  {impl->hook, impl->registry, impl->experts}));
    impl->port = impl->http->port();
  }
  return std::unique_ptr<ServingMetrics>(new ServingMetrics(std::move(impl)));
}

int ServingMetrics::port() const { return impl_->port; }

void ServingMetrics::ObserveRequest(const RequestRecord& r, const RequestDurations& d) {
  Impl::PerApi& p = impl_->api[ApiIndex(r.api)];
  if (r.grpc_code == 0) {
    int reason = 2;
    if (r.finish_reason == batching::FinishReason::kStop) reason = 0;
    if (r.finish_reason == batching::FinishReason::kLength) reason = 1;
    p.success[reason]->Increment();
  } else {
    const int code = r.grpc_code > 0 && r.grpc_code < kNumCodes ? r.grpc_code : 2;
    pm::Counter* counter = p.failure[code].load(std::memory_order_acquire);
    if (counter == nullptr) {
      std::lock_guard<std::mutex> lock(impl_->failure_mu);
      counter = p.failure[code].load(std::memory_order_relaxed);
      if (counter == nullptr) {
        counter = &impl_->failure_family->Add(
            {{"api", ApiName(ApiIndex(r.api))}, {"code", kCodeNames[code]}});
        p.failure[code].store(counter, std::memory_order_release);
      }
    }
    counter->Increment();
  }
  if (!r.reached_engine()) return;
  if (d.ttft_ms) p.ttft->Observe(*d.ttft_ms * 1e-3);
  if (d.tpot_ms) p.tpot->Observe(*d.tpot_ms * 1e-3);
  p.e2e->Observe(d.e2e_ms * 1e-3);
  p.queue->Observe(d.queue_ms * 1e-3);
  if (r.first_scheduled_ns > 0) {
    p.prefill->Observe(d.prefill_ms * 1e-3);
    p.inference->Observe((d.prefill_ms + d.decode_ms) * 1e-3);
  }
  if (r.first_token_ns > 0) p.decode->Observe(d.decode_ms * 1e-3);
  p.prompt_tokens->Observe(r.prompt_tokens);
  p.generation_tokens->Observe(r.generated_tokens);
  if (r.sampling.max_tokens) p.max_tokens->Observe(*r.sampling.max_tokens);
}

void ServingMetrics::ObserveStep(const engine::StepStats& s, const ExpertLoadDigest* experts) {
  Impl& m = *impl_;
  m.running->Set(s.num_running);
  m.waiting->Set(s.num_waiting);
  m.kv_usage->Set(s.kv_usage);
  m.waiting_tokens->Set(static_cast<double>(s.num_waiting_tokens));
  m.steps->Increment();
  if (s.num_prompt_tokens > 0) m.prompt_tokens->Increment(s.num_prompt_tokens);
  if (s.num_generated_tokens > 0) m.generation_tokens->Increment(s.num_generated_tokens);
  if (s.prefix_queried_tokens > m.last_prefix_queried) {
    m.prefix_queries->Increment(
        static_cast<double>(s.prefix_queried_tokens - m.last_prefix_queried));
    m.last_prefix_queried = s.prefix_queried_tokens;
  }
  if (s.prefix_hit_tokens > m.last_prefix_hits) {
    m.prefix_hits->Increment(static_cast<double>(s.prefix_hit_tokens - m.last_prefix_hits));
    m.last_prefix_hits = s.prefix_hit_tokens;
  }
  if (s.total_preemptions > m.last_preemptions) {
    m.preemptions->Increment(static_cast<double>(s.total_preemptions - m.last_preemptions));
    m.last_preemptions = s.total_preemptions;
  }
  m.iteration_tokens->Observe(s.num_tokens);
  m.step_seconds[static_cast<int>(s.phase)]->Observe(static_cast<double>(s.step_ns) * 1e-9);
  if (s.timings.expert_dispatch_ns > 0) {
    m.dispatch->Observe(static_cast<double>(s.timings.expert_dispatch_ns) * 1e-9);
  }
  if (s.timings.grouped_gemm_ns > 0) {
    m.gemm->Observe(static_cast<double>(s.timings.grouped_gemm_ns) * 1e-9);
  }
  if (!s.itl_ns.empty()) {
    // One lock and one pass over the buckets per step instead of one Observe per token. Gaps
    // are mostly in the first buckets: a linear scan from the bottom is the shortest search.
    const int64_t* bounds = m.itl_bounds_ns.data();
    const size_t num_bounds = m.itl_bounds_ns.size();
    // Tokens whose sequences also decoded in the same previous step share one gap value.
    int64_t sum_ns = 0;
    int64_t last_ns = -1;
    size_t b = 0;
    for (int64_t ns : s.itl_ns) {
      if (ns != last_ns) {
        b = 0;
        while (b < num_bounds && ns > bounds[b]) ++b;
        last_ns = ns;
      }
      ++m.itl_counts[b];
      sum_ns += ns;
    }
    for (size_t b = 0; b < m.itl_counts.size(); ++b) {
      m.itl_increments[b] = static_cast<double>(m.itl_counts[b]);
      m.itl_counts[b] = 0;
    }
    m.itl->ObserveMultiple(m.itl_increments, static_cast<double>(sum_ns) * 1e-9);
  }
  if (experts != nullptr && experts->layers > 0) {
    m.imbalance->Set(experts->imbalance);
    m.distinct->Set(experts->distinct);
    m.experts->Add(*experts);
  }
}

void ServingMetrics::StreamOpened(ApiKind api, int rpc) {
  if (pm::Gauge* g = impl_->streams[ApiIndex(api)][rpc]) g->Increment();
}

void ServingMetrics::StreamClosed(ApiKind api, int rpc) {
  if (pm::Gauge* g = impl_->streams[ApiIndex(api)][rpc]) g->Decrement();
}

void ServingMetrics::SetEngineReady(bool ready) { impl_->ready->Set(ready ? 1 : 0); }

std::string ServingMetrics::Render() const {
  std::vector<pm::MetricFamily> families = impl_->hook->Collect();
  for (auto& f : impl_->registry->Collect()) families.push_back(std::move(f));
  for (auto& f : impl_->experts->Collect()) families.push_back(std::move(f));
  std::ostringstream out;
  pm::TextSerializer().Serialize(out, families);
  return out.str();
}

}  // namespace moe::serving
