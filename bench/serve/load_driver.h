// LoadDriver: sends a workload to a moeserve server and records what comes back, from one thread.
//
// One gRPC CompletionQueue, driven by the calling thread: it releases requests on the arrival
// schedule, starts calls (native MoeServe.Generate server streams, or KServe ModelStreamInfer
// bidi streams), and timestamps every message as the queue hands it over. No other thread
// touches a call, so the harness costs one core and its timestamps have no hand-off delay.
//
// Sending rules, per run:
//   - open loop: request i is released at SendTimes()[i] (or its trace timestamp); with
//     --max-concurrency it then waits for a free slot (the wait is its client_queue_time);
//   - closed loop (--concurrency C): C requests in flight, the next sent as one ends;
//   - bounds: num_requests, and duration_s (no release after it); every call carries a deadline
//     of request_timeout_s. Warm-up requests go first, all at once within the concurrency
//     limits, and are not recorded.
// gRPC stays out of this header (it is included by the CLI and tests).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bench/serve/arrival.h"
#include "bench/serve/request_record.h"
#include "bench/serve/workload.h"
#include "core/status.h"

namespace moe::bench {

enum class Api { kNative, kKServe };

struct TargetOptions {
  std::string host = "127.0.0.1";
  int port = 50051;
  Api api = Api::kNative;
  std::string kserve_model = "tensorrt_llm";   // token prompts
  std::string kserve_text_model = "ensemble";  // text prompts
  int num_connections = 1;  // HTTP/2 connections; requests are spread round-robin

  // Loopback only: the harness is a measuring tool, never a load generator against others.
  Status Validate() const;
  std::string address() const;
};

// True for "localhost", 127.0.0.0/8 and ::1 (with or without brackets).
bool IsLoopbackHost(const std::string& host);

struct RunOptions {
  int64_t num_requests = 1000;  // count bound (warm-ups excluded)
  int num_warmups = 0;
  ArrivalOptions arrival;
  int max_concurrency = 0;  // 0 = unlimited
  int concurrency = 0;      // > 0: closed loop
  double duration_s = 0;    // 0 = no time bound on releases
  double request_timeout_s = 600;
  double trace_time_scale = 1.0;  // trace replay: multiply timestamps
  double release_spin_s = 0.001;  // poll instead of blocking this close to a release
  float temperature = 0.0f;
  bool return_perf = true;
  bool progress = false;
  std::string label;  // progress bar prefix
  std::string request_id_prefix = "bench";
};

struct RunResult {
  std::vector<RequestRecord> records;  // in send order
  double duration_s = 0;               // run start (t = 0) to the last completion
  int64_t start_wall_ns = 0;           // t = 0 on the wall clock
  int warmups_completed = 0;
  bool stopped_by_duration = false;
  // CPU the harness process used during the measured run (all its threads): how close the
  // harness itself came to being the bottleneck.
  double harness_cpu_s = 0;
};

struct ServerLoads {
  int running = 0;
  int waiting = 0;
  int active_requests = 0;
  uint64_t total_steps = 0;
};

class LoadDriver {
 public:
  // Opens the connections (fails with UNAVAILABLE when the server does not answer in
  // `connect_timeout_s`).
  static StatusOr<std::unique_ptr<LoadDriver>> Connect(const TargetOptions& target,
                                                       double connect_timeout_s = 10);
  ~LoadDriver();

  StatusOr<ModelFacts> GetModelInfo();
  StatusOr<ServerLoads> GetLoads();
  StatusOr<RunResult> Run(const Workload& workload, const RunOptions& options);

  struct Impl;  // the channels and stubs (load_driver.cc)

 private:
  explicit LoadDriver(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moe::bench
