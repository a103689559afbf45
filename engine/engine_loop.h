// EngineLoop: owns the engine thread (DESIGN.md §2, §5). Other threads Submit requests and Abort
// them through a thread-safe inbox; the engine thread alone drives the scheduler: drain inbox ->
// Schedule -> run the step -> Update -> publish outputs to each request's OutputSink.
//
// Failure: a step that fails (a backend error) is not committed; the requests it touched finish
// with INTERNAL and every other request keeps going.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "engine/engine_observer.h"
#include "engine/executor.h"
#include "engine/request_output.h"
#include "scheduler/scheduler.h"

namespace moe::engine {

struct EngineStats {
  int num_running = 0;
  int num_waiting = 0;
  int64_t num_waiting_tokens = 0;
  double kv_usage = 0;                      // fraction of KV blocks in use
  double prefix_hit_rate = 0;               // hit tokens / queried tokens, since start
  double generation_tokens_per_second = 0;  // recent (exponentially smoothed over ~10 s)
  double prompt_tokens_per_second = 0;
  int64_t total_steps = 0;
  int64_t total_preemptions = 0;
  int64_t total_generated_tokens = 0;
  int64_t total_prompt_tokens = 0;
};

struct EngineConfig {
  scheduler::SchedulerConfig scheduler;
  int vocab_size = 0;
  std::vector<int32_t> eos_token_ids;
  // A random seed for requests without one (0 = from the clock).
  uint64_t seed = 0;
};

class EngineLoop {
 public:
  EngineLoop(const EngineConfig& config, std::unique_ptr<StepRunner> runner);
  ~EngineLoop();  // stops the thread; unfinished requests finish with kAbort

  void Start();
  // Stops the engine thread after the current step; pending requests finish aborted.
  void Stop();

  // Thread-safe. Validates the request (ids in the vocabulary, sampling ranges, context limit)
  // and queues it; the sink then receives its outputs. Errors (nothing queued, the sink is never
  // called): INVALID_ARGUMENT naming the field, RESOURCE_EXHAUSTED when the queue is full.
  Status Submit(batching::Request request, std::shared_ptr<OutputSink> sink);
  // Thread-safe; takes effect within one step. Unknown or finished ids are ignored.
  void Abort(batching::RequestId id);
  // Thread-safe: ends a request as stopped by a stop string its owner found in the text.
  void StopRequest(batching::RequestId id, std::string matched_stop);
  // A fresh engine-internal id (thread-safe).
  batching::RequestId NextId() { return next_id_.fetch_add(1); }

  // Thread-safe snapshot, refreshed every step.
  EngineStats Stats() const;

  // Thread-safe. Attaches (or, with null, detaches) the observer the engine thread calls every
  // step and for every finished request; it takes effect before the next step. The loop keeps a
  // reference until the next change or its destruction.
  void SetObserver(std::shared_ptr<EngineObserver> observer);
  std::shared_ptr<EngineObserver> observer() const;
  // Requests submitted and not yet finished.
  int num_unfinished() const { return unfinished_.load(); }
  // Blocks until no request is unfinished or the timeout passes; true when idle.
  bool WaitIdle(int64_t timeout_ms);

 private:
  void Run();
  void DrainInbox();
  void PublishStep(const std::vector<scheduler::SequenceOutput>& outputs);
  void PublishFinished();
  void FailPlan(const scheduler::StepPlan& plan, const Status& status);
  // Per-step token accounting, computed from the plan before it runs (every sequence of the
  // plan is still known to the scheduler then).
  struct StepCounts {
    int prompt_tokens = 0;
    int prefill_seqs = 0;  // sequences computing prompt (or recomputed) positions
    int decode_seqs = 0;
    int samples = 0;  // sequences that sample a token
  };
  StepCounts CountStep(const scheduler::StepPlan& plan) const;
  void RefreshStats(const scheduler::StepPlan& plan, const StepCounts& counts);
  void AdoptObserver();
  void NotifyStep(const scheduler::StepPlan& plan, const StepCounts& counts,
                  const StatusOr<scheduler::StepResult>& result, int64_t step_ns);

  EngineConfig config_;
  std::unique_ptr<StepRunner> runner_;
  scheduler::Scheduler scheduler_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  struct Pending {
    batching::Request request;
    std::shared_ptr<OutputSink> sink;
  };
  std::deque<Pending> inbox_;
  struct Termination {
    batching::RequestId id;
    batching::FinishReason reason;
    std::string matched_stop;
  };
  std::vector<Termination> terminations_;
  bool stop_ = false;
  std::thread thread_;

  // Engine-thread state.
  std::unordered_map<batching::RequestId, std::shared_ptr<OutputSink>> sinks_;
  std::unordered_map<batching::RequestId, Status> failures_;
  std::unordered_map<batching::RequestId, scheduler::SequenceOutput> final_delta_;
  uint64_t seed_state_;

  std::atomic<batching::RequestId> next_id_{1};
  std::atomic<int> unfinished_{0};
  std::atomic<int> queued_{0};  // inbox + waiting, for admission control
  mutable std::mutex stats_mu_;
  EngineStats stats_;
  int64_t last_stats_ns_ = 0;

  mutable std::mutex observer_mu_;
  std::shared_ptr<EngineObserver> pending_observer_;  // guarded by observer_mu_
  std::atomic<bool> observer_changed_{false};
  std::shared_ptr<EngineObserver> observer_;  // engine thread
  std::vector<int64_t> itl_scratch_;          // engine thread: this step's inter-token gaps
};

}  // namespace moe::engine
