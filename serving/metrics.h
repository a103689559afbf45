// ServingMetrics: the Prometheus series of the server (docs/api-and-loadtest.md §(c)): vLLM's
// names and bucket layouts with the `moeserve_` prefix (plus sub-10 ms inter-token buckets), MoE
// series (tokens per expert per layer, load imbalance, expert dispatch and grouped-GEMM time) and
// gRPC stream gauges, served on a plain HTTP /metrics port (metrics_http_server.h).
//
// Every series carries `model_name`; request-level series also `api` (native | kserve). Labels
// never carry request ids: cardinality is fixed at start-up except
// moeserve_request_failure_total{code} (at most the 17 gRPC codes) and
// moeserve_expert_tokens_total{layer,expert} (layers x experts, capped by max_expert_series:
// beyond it the layer label becomes "all", then experts past the cap fold into "other").
//
// Threads: ObserveRequest / Stream* from gRPC threads, ObserveStep from the engine thread only,
// scrapes from the metrics server's thread. All cheap: atomics and short per-histogram locks.
// prometheus-cpp stays out of this header (it is slow to compile).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "engine/engine_observer.h"
#include "serving/request_log_record.h"

namespace moe::serving {

struct MetricsOptions {
  bool serve_http = true;          // false: registry only (Render), no port
  std::string host = "127.0.0.1";  // loopback by default
  int port = 0;                    // 0 = any free port
  std::string model_name = "moeserve";
  int max_model_len = 4096;  // upper end of the token-count buckets
  int num_moe_layers = 0;    // expert series dimensions (0 = none)
  int num_experts = 0;
  std::vector<int> moe_layer_ids;  // model layer index of each MoE layer (the `layer` label)
  int max_expert_series = 4096;
  // Called at every scrape before the series are read (e.g. to refresh readiness).
  std::function<void()> on_scrape;

  Status Validate() const;
};

// Routing-derived expert load of one step.
struct ExpertLoadDigest {
  const int32_t* tokens = nullptr;  // [layers * experts]: tokens routed to each expert
  int layers = 0;
  int experts = 0;
  double distinct = 0;   // mean over layers of experts with at least one token
  double imbalance = 0;  // mean over layers of max / mean tokens per expert
};

// Bucket layouts (seconds unless noted).
std::vector<double> TtftBuckets();                     // vLLM TTFT
std::vector<double> InterTokenBuckets();               // 1, 2, 3, 5, 7.5 ms + vLLM ITL/TPOT
std::vector<double> RequestLatencyBuckets();           // vLLM e2e / queue / prefill / decode
std::vector<double> TokenCountBuckets(int max_value);  // 1-2-5 up to max_value
std::vector<double> IterationTokenBuckets();           // vLLM: 1, 8, 16, ..., 16384
std::vector<double> StepTimeBuckets();                 // 10 us .. 10 s

class ServingMetrics {
 public:
  // Builds the registry and, with serve_http, binds the /metrics endpoint. Errors: the port is in
  // use.
  static StatusOr<std::unique_ptr<ServingMetrics>> Create(const MetricsOptions& options);
  ~ServingMetrics();

  // The bound HTTP port (-1 without serve_http).
  int port() const;

  void ObserveRequest(const RequestRecord& record, const RequestDurations& durations);
  // Engine thread. `experts` may be null (no routing trace this step).
  void ObserveStep(const engine::StepStats& stats, const ExpertLoadDigest* experts);
  // An RPC started / ended; `rpc` is the method name (Generate, ModelInfer, ModelStreamInfer).
  void StreamOpened(ApiKind api, int rpc);
  void StreamClosed(ApiKind api, int rpc);
  void SetEngineReady(bool ready);

  // The Prometheus text exposition of every series (what /metrics serves).
  std::string Render() const;

  // RPC ids for StreamOpened / StreamClosed.
  static constexpr int kRpcGenerate = 0;
  static constexpr int kRpcModelInfer = 1;
  static constexpr int kRpcModelStreamInfer = 2;

 private:
  struct Impl;
  explicit ServingMetrics(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moe::serving
