// Telemetry: the server's observability hub. It is the engine's EngineObserver (per-step stats
// and routing -> Prometheus series and the periodic engine_stats event) and the sink of the RPC
// reactors' RequestRecords (-> request-level series and the request_finished event). Either half
// can be off: metrics (Prometheus /metrics port) and the JSON Lines log are independent.
//
// Wiring: the composition root creates it and attaches it to the engine loop
// (EngineLoop::SetObserver); reactors find it through their gateway (Telemetry::Of), so
// no RPC surface needs another constructor argument. With no telemetry attached they do nothing.
//
// Threads: OnStep on the engine thread; RequestFinished / Stream* on gRPC threads; a background
// thread writes engine_stats every engine_stats_interval_s. Nothing here blocks on I/O.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine_observer.h"
#include "serving/metrics.h"
#include "serving/request_gateway.h"
#include "serving/request_log.h"
#include "serving/request_log_record.h"

namespace moe::serving {

struct TelemetryOptions {
  // Prometheus.
  bool metrics = false;
  std::string metrics_host = "127.0.0.1";
  int metrics_port = 0;  // with metrics on: 0 = any free port
  int max_expert_series = 4096;
  // JSON Lines log.
  std::string log_file;  // empty = no log; "-" = stdout
  int64_t log_max_bytes = 100LL << 20;
  int log_max_files = 5;
  bool log_prompts = false;              // the prompt (text or ids) in request_finished
  double engine_stats_interval_s = 5.0;  // 0 = no engine_stats events

  Status Validate() const;
  // Metrics or per-step log data want the experts each token was routed to.
  bool wants_routing() const { return metrics || !log_file.empty(); }
};

class Telemetry final : public engine::EngineObserver {
 public:
  // `gateway` supplies the model facts and readiness; it must outlive Stop().
  static StatusOr<std::shared_ptr<Telemetry>> Create(const TelemetryOptions& options,
                                                     const RequestGateway* gateway);
  // The telemetry attached to `gateway`'s engine loop, or null.
  static std::shared_ptr<Telemetry> Of(const RequestGateway& gateway);
  ~Telemetry() override;

  // Ends the engine_stats thread (writing a last event) and flushes the log; after it the
  // gateway is no longer used. Idempotent; the destructor calls it.
  void Stop();

  // RPC side.
  bool log_prompts() const { return options_.log_prompts; }
  void RequestFinished(RequestRecord record);
  void StreamOpened(ApiKind api, int rpc);
  void StreamClosed(ApiKind api, int rpc);

  // EngineObserver (engine thread).
  void OnStep(const engine::StepStats& stats) override;

  int metrics_port() const { return metrics_ != nullptr ? metrics_->port() : -1; }
  ServingMetrics* metrics() { return metrics_.get(); }
  RequestLog* log() { return log_.get(); }
  // Writes an engine_stats event now and flushes the log (tests, shutdown).
  void WriteEngineStats();

 private:
  Telemetry(const TelemetryOptions& options, const RequestGateway* gateway);
  void Run();
  void RefreshReady();

  TelemetryOptions options_;
  const RequestGateway* gateway_;
  std::unique_ptr<ServingMetrics> metrics_;
  std::unique_ptr<RequestLog> log_;
  int num_experts_ = 0;
  std::vector<int> moe_layer_ids_;

  // Engine thread: this step's tokens per [layer, expert].
  std::vector<int32_t> step_tokens_;

  // Interval accumulators (engine thread writes, stats thread reads and resets).
  std::mutex interval_mu_;
  struct Interval {
    int64_t start_ns = 0;  // monotonic
    int64_t steps = 0;
    int64_t steps_by_phase[3] = {0, 0, 0};
    int64_t batch_sum = 0;
    int max_batch = 0;
    int64_t step_ns_sum = 0;
    int64_t prompt_tokens = 0;
    int64_t generated_tokens = 0;
    int64_t routed_steps = 0;
    double distinct_sum = 0;
    double imbalance_sum = 0;
    std::vector<int64_t> expert_tokens;  // [layers * experts]
  } interval_;
  // Last engine state seen (guarded by interval_mu_).
  engine::StepStats last_;
  int64_t interval_prefix_queried_ = 0;
  int64_t interval_prefix_hits_ = 0;
  int64_t interval_preemptions_ = 0;

  std::atomic<int64_t> requests_finished_{0};
  std::atomic<int64_t> streams_open_{0};

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  bool stopped_ = false;
  std::thread thread_;
};

}  // namespace moe::serving
