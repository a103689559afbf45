// Scheduler: continuous batching with chunked prefill, paged KV blocks, prefix caching and
// preemption by recompute (DESIGN.md §2, §6).
//
// The step contract: Schedule() plans a step without changing any state; Update(plan, result)
// commits the plan (block allocations, admissions, preemptions) together with what the step
// produced. A step that fails is simply not committed, leaving the scheduler as it was.
//
// A sequence advances num_computed_tokens toward num_tokens(); chunked prefill, decode and (later)
// speculative verification are all the same operation: compute positions [start, start + n).
// Order within a step is stall-free: running decodes first, then continuing prefills, then new
// admissions, until the token budget or the sequence limit is reached.
//
// Threads: the engine thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "batching/request.h"
#include "batching/sequence.h"
#include "scheduler/kv_block_pool.h"
#include "scheduler/scheduler_config.h"
#include "scheduler/step_plan.h"
#include "scheduler/step_result.h"

namespace moe::scheduler {

using batching::FinishReason;
using batching::RequestId;
using batching::Sequence;

// What a committed step did to one sequence.
struct SequenceOutput {
  RequestId id = 0;
  int32_t token = -1;     // the token appended by this step (-1 = none: a prefill chunk)
  SampleOutput sample;    // its logprobs when requested
  bool finished = false;  // the sequence finished in this step (collect it with TakeFinished)
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& config, std::vector<int32_t> eos_token_ids);

  const SchedulerConfig& config() const { return config_; }

  // Queues a validated request. Errors: RESOURCE_EXHAUSTED when the waiting queue is full or the
  // request could never fit in the KV cache; INVALID_ARGUMENT when prompt + max_tokens exceed
  // max_model_len. The request is not queued on error.
  Status Add(batching::Request request);

  // Finishes a waiting or running request now (abort, or a stop string found by the caller),
  // releasing its blocks. False when the id is unknown or already finished.
  bool Finish(RequestId id, FinishReason reason, const std::string& matched_stop = "");

  StepPlan Schedule();
  std::vector<SequenceOutput> Update(const StepPlan& plan, const StepResult& result);

  // Sequences finished since the last call (by Update or Finish), handed over to the caller.
  std::vector<std::unique_ptr<Sequence>> TakeFinished();

  const Sequence* Find(RequestId id) const;
  bool HasWork() const { return !running_.empty() || !waiting_.empty(); }
  int num_running() const { return static_cast<int>(running_.size()); }
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  int64_t num_waiting_tokens() const;
  const KvBlockPool& pool() const { return pool_; }
  int64_t total_preemptions() const { return total_preemptions_; }
  uint64_t steps() const { return step_; }

  // Effective output limit of a sequence: its max_tokens, or what the context leaves.
  int MaxNewTokens(const Sequence& seq) const;

 private:
  using Key = std::tuple<int64_t, int64_t, RequestId>;  // (priority, arrival, id): smaller first
  Key KeyOf(const Sequence& s) const;
  class PlanBlocks;

  void InsertRunning(Sequence* s);
  void EraseRunning(Sequence* s);
  void ReleaseBlocks(Sequence* s);
  const std::vector<uint64_t>& FullBlockHashes(Sequence* s, int num_full_blocks);
  void RegisterComputedBlocks(Sequence* s, int old_computed);
  bool CheckStop(Sequence* s);
  void MoveToFinished(Sequence* s, FinishReason reason);

  SchedulerConfig config_;
  std::vector<int32_t> eos_token_ids_;
  KvBlockPool pool_;
  std::unordered_map<RequestId, std::unique_ptr<Sequence>> seqs_;
  std::set<Key> waiting_;
  std::unordered_map<RequestId, Sequence*> waiting_seqs_;
  std::vector<Sequence*> running_;  // sorted by KeyOf
  std::vector<std::unique_ptr<Sequence>> finished_;
  uint64_t step_ = 0;
  int64_t total_preemptions_ = 0;
  // Planning scratch: refcount deltas of blocks touched by the plan being built.
  std::vector<int32_t> plan_delta_;
  std::vector<uint8_t> plan_claimed_;
  std::vector<BlockId> plan_dirty_;
};

}  // namespace moe::scheduler
