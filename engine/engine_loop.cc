#include "engine/engine_loop.h"

#include <algorithm>
#include <cmath>

#include "core/clock.h"
#include "core/hash.h"
#include "core/logging.h"

namespace moe::engine {
namespace {

// Wall-clock time of a monotonic timestamp of the same request.
int64_t ToWall(const batching::Sequence& s, int64_t mono_ns) {
  if (mono_ns == 0) return 0;
  return s.request.arrival_wall_ns + (mono_ns - s.request.arrival_ns);
}

}  // namespace

EngineLoop::EngineLoop(const EngineConfig& config, std::unique_ptr<StepRunner> runner)
    : config_(config),
      runner_(std::move(runner)),
      scheduler_(config.scheduler, config.eos_token_ids),
      seed_state_(config.seed != 0 ? config.seed : static_cast<uint64_t>(WallNanos())) {}

EngineLoop::~EngineLoop() { Stop(); }

void EngineLoop::Start() {
  MOE_CHECK(!thread_.joinable()) << "EngineLoop started twice";
  thread_ = std::thread([this] { Run(); });
}

void EngineLoop::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status EngineLoop::Submit(batching::Request request, std::shared_ptr<OutputSink> sink) {
  if (request.prompt.empty()) return InvalidArgument("input_ids: the prompt is empty");
  for (size_t i = 0; i < request.prompt.size(); ++i) {
    if (request.prompt[i] < 0 || request.prompt[i] >= config_.vocab_size) {
      return InvalidArgument("input_ids[", i, "] = ", request.prompt[i],
                             " is outside the vocabulary [0, ", config_.vocab_size, ")");
    }
  }
  MOE_RETURN_IF_ERROR(request.sampling.Validate(config_.vocab_size));
  const auto& sc = config_.scheduler;
  const int prompt = static_cast<int>(request.prompt.size());
  if (prompt >= sc.max_model_len) {
    return InvalidArgument("input_ids: the prompt has ", prompt, " tokens; the context limit is ",
                           sc.max_model_len);
  }
  if (request.sampling.max_tokens && prompt + *request.sampling.max_tokens > sc.max_model_len) {
    return InvalidArgument("sampling.max_tokens: prompt (", prompt, ") + max_tokens (",
                           *request.sampling.max_tokens, ") exceed the context limit of ",
                           sc.max_model_len);
  }
  const int64_t blocks = (static_cast<int64_t>(prompt) + 1 + sc.block_size - 1) / sc.block_size;
  if (blocks > sc.num_blocks) {
    return ResourceExhausted("the prompt needs ", blocks, " KV blocks; the cache holds ",
                             sc.num_blocks);
  }
  if (queued_.load() >= sc.max_waiting) {
    return ResourceExhausted("the waiting queue is full (", sc.max_waiting,
                             " requests); retry later");
  }
  if (request.arrival_ns == 0) request.arrival_ns = MonotonicNanos();
  if (request.arrival_wall_ns == 0) request.arrival_wall_ns = WallNanos();
  if (request.id == 0) request.id = NextId();
  ++queued_;
  ++unfinished_;
  {
    std::lock_guard<std::mutex> lock(mu_);
    inbox_.push_back(Pending{std::move(request), std::move(sink)});
  }
  cv_.notify_one();
  return OkStatus();
}

void EngineLoop::Abort(batching::RequestId id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    terminations_.push_back({id, batching::FinishReason::kAbort, ""});
  }
  cv_.notify_one();
}

void EngineLoop::StopRequest(batching::RequestId id, std::string matched_stop) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    terminations_.push_back({id, batching::FinishReason::kStop, std::move(matched_stop)});
  }
  cv_.notify_one();
}

EngineStats EngineLoop::Stats() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  return stats_;
}

void EngineLoop::SetObserver(std::shared_ptr<EngineObserver> observer) {
  {
    std::lock_guard<std::mutex> lock(observer_mu_);
    pending_observer_ = std::move(observer);
    observer_changed_.store(true, std::memory_order_release);
  }
}

std::shared_ptr<EngineObserver> EngineLoop::observer() const {
  std::lock_guard<std::mutex> lock(observer_mu_);
  return pending_observer_;
}

void EngineLoop::AdoptObserver() {
  std::lock_guard<std::mutex> lock(observer_mu_);
  observer_ = pending_observer_;
  observer_changed_.store(false, std::memory_order_relaxed);
  itl_scratch_.clear();
}

bool EngineLoop::WaitIdle(int64_t timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                           [this] { return unfinished_.load() == 0; });
}

void EngineLoop::DrainInbox() {
  std::deque<Pending> inbox;
  std::vector<Termination> terminations;
  {
    std::lock_guard<std::mutex> lock(mu_);
    inbox.swap(inbox_);
    terminations.swap(terminations_);
  }
  for (Pending& p : inbox) {
    if (!p.request.sampling.seed) p.request.sampling.seed = SplitMix64(&seed_state_);
    const batching::RequestId id = p.request.id;
    Status status = scheduler_.Add(std::move(p.request));
    if (!status.ok()) {
      --queued_;
      RequestOutput out;
      out.id = id;
      out.finished = true;
      out.status = status;
      out.finish_reason = batching::FinishReason::kAbort;
      p.sink->OnOutput(std::move(out));
      --unfinished_;
      continue;
    }
    sinks_.emplace(id, std::move(p.sink));
  }
  for (const Termination& t : terminations) {
    scheduler_.Finish(t.id, t.reason, t.matched_stop);
  }
}

void EngineLoop::PublishStep(const std::vector<scheduler::SequenceOutput>& outputs) {
  for (const scheduler::SequenceOutput& o : outputs) {
    if (o.token < 0) continue;
    if (o.finished) {
      // The last token travels in the final message.
      final_delta_[o.id] = o;
      continue;
    }
    auto it = sinks_.find(o.id);
    if (it == sinks_.end()) continue;
    RequestOutput out;
    out.id = o.id;
    out.new_tokens.push_back(o.token);
    const batching::Sequence* s = scheduler_.Find(o.id);
    if (s != nullptr) {
      if (observer_ != nullptr && s->last_itl_ns > 0) itl_scratch_.push_back(s->last_itl_ns);
      if (s->request.sampling.logprobs > 0) out.logprobs.push_back(o.sample);
      out.prompt_tokens = s->num_prompt_tokens;
      out.completion_tokens = s->num_generated();
      out.cached_tokens = s->num_cached_tokens;
    }
    it->second->OnOutput(std::move(out));
  }
}

void EngineLoop::PublishFinished() {
  for (std::unique_ptr<batching::Sequence>& s : scheduler_.TakeFinished()) {
    auto it = sinks_.find(s->id());
    if (it == sinks_.end()) continue;
    RequestOutput out;
    out.id = s->id();
    out.finished = true;
    auto failure = failures_.find(s->id());
    if (failure != failures_.end()) {
      out.status = failure->second;
      failures_.erase(failure);
    }
    out.finished_time_ns = ToWall(*s, s->finished_ns);
    out.max_itl_ns = s->max_itl_ns;
    out.num_steps = s->num_steps_scheduled;
    out.batch_size_at_first_token = s->batch_size_at_first_token;
    out.seed = s->seed;
    out.finish_reason = s->finish_reason;
    out.matched_stop_token = s->matched_stop_token;
    out.matched_stop_string = s->matched_stop_string;
    out.output_ids.assign(s->tokens.begin() + s->num_prompt_tokens, s->tokens.end());
    out.prompt_tokens = s->num_prompt_tokens;
    out.completion_tokens = s->num_generated();
    out.cached_tokens = s->num_cached_tokens;
    out.num_preemptions = s->num_preemptions;
    out.arrival_time_ns = s->request.arrival_wall_ns;
    out.first_scheduled_time_ns = ToWall(*s, s->first_scheduled_ns);
    out.first_token_time_ns = ToWall(*s, s->first_token_ns);
    out.last_token_time_ns = ToWall(*s, s->last_token_ns);
    auto last = final_delta_.find(s->id());
    if (last != final_delta_.end()) {
      out.new_tokens.push_back(last->second.token);
      if (s->request.sampling.logprobs > 0) out.logprobs.push_back(last->second.sample);
      final_delta_.erase(last);
      if (observer_ != nullptr && s->last_itl_ns > 0) itl_scratch_.push_back(s->last_itl_ns);
    }
    if (observer_ != nullptr) {
      RequestFinishRecord r;
      r.id = out.id;
      r.external_id = s->request.external_id;
      r.finish_reason = out.finish_reason;
      r.status_code = out.status.code();
      r.prompt_tokens = out.prompt_tokens;
      r.completion_tokens = out.completion_tokens;
      r.cached_tokens = out.cached_tokens;
      r.num_preemptions = out.num_preemptions;
      r.num_steps = out.num_steps;
      r.batch_size_at_first_token = out.batch_size_at_first_token;
      r.max_itl_ns = out.max_itl_ns;
      r.arrival_ns = out.arrival_time_ns;
      r.first_scheduled_ns = out.first_scheduled_time_ns;
      r.first_token_ns = out.first_token_time_ns;
      r.last_token_ns = out.last_token_time_ns;
      r.finished_ns = out.finished_time_ns;
      observer_->OnRequestFinished(r);
    }
    std::shared_ptr<OutputSink> sink = std::move(it->second);
    sinks_.erase(it);
    sink->OnOutput(std::move(out));
    --unfinished_;
  }
}

void EngineLoop::FailPlan(const scheduler::StepPlan& plan, const Status& status) {
  MOE_LOG(ERROR) << "step " << plan.step << " failed: " << status.message();
  for (const scheduler::ScheduledSeq& ss : plan.seqs) {
    failures_[ss.id] = Internal("the engine step failed: ", status.message());
    scheduler_.Finish(ss.id, batching::FinishReason::kAbort);
  }
}

EngineLoop::StepCounts EngineLoop::CountStep(const scheduler::StepPlan& plan) const {
  StepCounts counts;
  for (const scheduler::ScheduledSeq& ss : plan.seqs) {
    const batching::Sequence* s = scheduler_.Find(ss.id);
    // Tokens computed below the prompt length are prompt work; the rest is generation.
    const int prompt_end = s != nullptr ? s->num_prompt_tokens : ss.start + ss.num_tokens;
    counts.prompt_tokens += std::max(0, std::min(ss.start + ss.num_tokens, prompt_end) - ss.start);
    counts.samples += ss.sample ? 1 : 0;
    if (ss.num_tokens > 1 || ss.start < prompt_end) {
      ++counts.prefill_seqs;
    } else {
      ++counts.decode_seqs;
    }
  }
  return counts;
}

void EngineLoop::RefreshStats(const scheduler::StepPlan& plan, const StepCounts& counts) {
  const int64_t now = MonotonicNanos();
  std::lock_guard<std::mutex> lock(stats_mu_);
  const int64_t prompt_tokens = counts.prompt_tokens;
  const int64_t generated = counts.samples;
  stats_.total_prompt_tokens += prompt_tokens;
  stats_.total_generated_tokens += generated;
  stats_.total_steps = static_cast<int64_t>(scheduler_.steps());
  stats_.total_preemptions = scheduler_.total_preemptions();
  stats_.num_running = scheduler_.num_running();
  stats_.num_waiting = scheduler_.num_waiting();
  stats_.num_waiting_tokens = scheduler_.num_waiting_tokens();
  stats_.kv_usage = scheduler_.pool().usage();
  stats_.prefix_hit_rate = scheduler_.pool().hit_rate();
  // Exponentially smoothed rates with a ~10 s time constant.
  const double dt = last_stats_ns_ == 0 ? 0 : (now - last_stats_ns_) * 1e-9;
  last_stats_ns_ = now;
  if (dt > 0) {
    const double alpha = 1.0 - std::exp(-dt / 10.0);
    stats_.generation_tokens_per_second +=
        alpha * (generated / dt - stats_.generation_tokens_per_second);
    stats_.prompt_tokens_per_second +=
        alpha * (prompt_tokens / dt - stats_.prompt_tokens_per_second);
  }
}

void EngineLoop::NotifyStep(const scheduler::StepPlan& plan, const StepCounts& counts,
                            const StatusOr<scheduler::StepResult>& result, int64_t step_ns) {
  StepStats st;
  st.step = plan.step;
  st.wall_ns = WallNanos();
  st.phase = counts.decode_seqs == 0    ? StepPhase::kPrefill
             : counts.prefill_seqs == 0 ? StepPhase::kDecode
                                        : StepPhase::kMixed;
  st.failed = !result.ok();
  st.num_seqs = static_cast<int>(plan.seqs.size());
  st.num_tokens = plan.num_tokens;
  st.num_prompt_tokens = counts.prompt_tokens;
  st.num_generated_tokens = result.ok() ? counts.samples : 0;
  st.num_preempted = static_cast<int>(plan.preempted.size());
  st.step_ns = step_ns;
  if (result.ok()) {
    st.timings = result->timings;
    if (result->routing.num_tokens > 0) st.routing = &result->routing;
  }
  st.itl_ns = itl_scratch_;
  st.num_running = scheduler_.num_running();
  st.num_waiting = scheduler_.num_waiting();
  st.num_waiting_tokens = scheduler_.num_waiting_tokens();
  st.kv_usage = scheduler_.pool().usage();
  st.prefix_queried_tokens = scheduler_.pool().queried_tokens();
  st.prefix_hit_tokens = scheduler_.pool().hit_tokens();
  st.total_preemptions = scheduler_.total_preemptions();
  observer_->OnStep(st);
  itl_scratch_.clear();
}

void EngineLoop::Run() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] {
        return stop_ || !inbox_.empty() || !terminations_.empty() || scheduler_.HasWork();
      });
      if (stop_) break;
    }
    if (observer_changed_.load(std::memory_order_acquire)) AdoptObserver();
    DrainInbox();
    PublishFinished();
    {
      std::lock_guard<std::mutex> lock(mu_);
      queued_.store(scheduler_.num_waiting() + static_cast<int>(inbox_.size()));
    }
    if (!scheduler_.HasWork()) {
      RefreshStats(scheduler::StepPlan{}, StepCounts{});
      idle_cv_.notify_all();
      continue;
    }
    Stopwatch step_watch;
    scheduler::StepPlan plan = scheduler_.Schedule();
    const int64_t schedule_ns = step_watch.ElapsedNanos();
    if (plan.empty()) {
      MOE_LOG(ERROR) << "the scheduler planned an empty step with work pending";
      continue;
    }
    const StepCounts counts = CountStep(plan);
    StatusOr<scheduler::StepResult> result = runner_->Run(plan, scheduler_);
    if (!result.ok()) {
      FailPlan(plan, result.status());
    } else {
      result->timings.schedule_ns = schedule_ns;
      const std::vector<scheduler::SequenceOutput> outputs = scheduler_.Update(plan, *result);
      PublishStep(outputs);
    }
    // Stats first, so whoever sees a request finish also sees the state after its last step.
    RefreshStats(plan, counts);
    PublishFinished();
    if (observer_ != nullptr) NotifyStep(plan, counts, result, step_watch.ElapsedNanos());
    if (unfinished_.load() == 0) idle_cv_.notify_all();
  }
  // Shutdown: everything still pending finishes aborted.
  DrainInbox();
  std::vector<batching::RequestId> pending;
  for (const auto& [id, sink] : sinks_) pending.push_back(id);
  for (batching::RequestId id : pending) {
    failures_[id] = Unavailable("the server is shutting down");
    scheduler_.Finish(id, batching::FinishReason::kAbort);
  }
  PublishFinished();
  idle_cv_.notify_all();
}

}  // namespace moe::engine
