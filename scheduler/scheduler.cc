#include "scheduler/scheduler.h"

#include <algorithm>

#include "core/check.h"
#include "core/clock.h"

namespace moe::scheduler {

int StepPlan::num_samples() const {
  int n = 0;
  for (const ScheduledSeq& s : seqs) n += s.sample ? 1 : 0;
  return n;
}

// Block accounting while a plan is built: what the pool would look like after the plan's
// releases, touches and allocations, without changing the pool. Allocation order matches what
// Update will do: the free queue from its head (skipping blocks the plan already claimed), then
// blocks released by this plan's preemptions.
class Scheduler::PlanBlocks {
 public:
  PlanBlocks(const KvBlockPool& pool, std::vector<int32_t>& delta, std::vector<uint8_t>& claimed,
             std::vector<BlockId>& dirty)
      : pool_(pool),
        delta_(delta),
        claimed_(claimed),
        dirty_(dirty),
        available_(pool.num_free()),
        cursor_(pool.FreeHead()) {}
  ~PlanBlocks() {
    for (BlockId b : dirty_) {
      delta_[b] = 0;
      claimed_[b] = 0;
    }
    dirty_.clear();
  }

  int available() const { return available_; }
  // True when this plan allocated `b` (its cached content will be overwritten).
  bool Claimed(BlockId b) const { return claimed_[b] != 0; }
  int RefCount(BlockId b) const { return pool_.refcount(b) + delta_[b]; }

  // Claims a cached block for a new owner.
  void Touch(BlockId b) {
    if (RefCount(b) == 0) --available_;
    Add(b, +1);
  }
  void Release(BlockId b) {
    Add(b, -1);
    if (RefCount(b) == 0) {
      released_.push_back(b);
      ++available_;
    }
  }
  // A free block for a new owner; requires available() > 0.
  BlockId Allocate() {
    MOE_CHECK_GT(available_, 0);
    while (cursor_ >= 0) {
      const BlockId b = cursor_;
      cursor_ = pool_.FreeNext(b);
      if (RefCount(b) == 0) return Claim(b);
    }
    while (released_pos_ < released_.size()) {
      const BlockId b = released_[released_pos_++];
      if (RefCount(b) == 0) return Claim(b);
    }
    MOE_CHECK(false) << "plan block accounting out of sync";
    return -1;
  }

 private:
  BlockId Claim(BlockId b) {
    Add(b, +1);
    claimed_[b] = 1;
    --available_;
    return b;
  }
  void Add(BlockId b, int d) {
    if (delta_[b] == 0) dirty_.push_back(b);
    delta_[b] += d;
  }

  const KvBlockPool& pool_;
  std::vector<int32_t>& delta_;
  std::vector<uint8_t>& claimed_;
  std::vector<BlockId>& dirty_;
  int available_;
  BlockId cursor_;
  std::vector<BlockId> released_;
  size_t released_pos_ = 0;
};

Scheduler::Scheduler(const SchedulerConfig& config, std::vector<int32_t> eos_token_ids)
    : config_(config),
      eos_token_ids_(std::move(eos_token_ids)),
      pool_(config.num_blocks, config.block_size, config.enable_prefix_caching),
      plan_delta_(config.num_blocks, 0),
      plan_claimed_(config.num_blocks, 0) {
  MOE_CHECK(config.Validate().ok()) << config.Validate().message();
}

Scheduler::Key Scheduler::KeyOf(const Sequence& s) const {
  const int64_t priority = config_.policy == SchedulingPolicy::kPriority ? s.request.priority : 0;
  return Key{priority, s.request.arrival_ns, s.id()};
}

int Scheduler::MaxNewTokens(const Sequence& s) const {
  const int by_context = config_.max_model_len - s.num_prompt_tokens;
  return std::min(s.request.sampling.max_tokens.value_or(by_context), by_context);
}

Status Scheduler::Add(batching::Request request) {
  const int prompt = static_cast<int>(request.prompt.size());
  if (prompt == 0) return InvalidArgument("input_ids: the prompt is empty");
  const int max_tokens = request.sampling.max_tokens.value_or(1);
  if (prompt + max_tokens > config_.max_model_len) {
    return InvalidArgument("prompt (", prompt, " tokens) + sampling.max_tokens (", max_tokens,
                           ") exceed the context limit of ", config_.max_model_len, " tokens");
  }
  const int64_t blocks_needed =
      (static_cast<int64_t>(prompt) + max_tokens + config_.block_size - 1) / config_.block_size;
  if (blocks_needed > config_.num_blocks) {
    return ResourceExhausted("the request needs ", blocks_needed,
                             " KV blocks but the cache holds only ", config_.num_blocks);
  }
  if (static_cast<int>(waiting_.size()) >= config_.max_waiting) {
    return ResourceExhausted("the waiting queue is full (", config_.max_waiting,
                             " requests); retry later");
  }
  if (seqs_.count(request.id) != 0) {
    return InvalidArgument("request id ", request.id, " is already in use");
  }
  auto seq = std::make_unique<Sequence>(std::move(request));
  Sequence* s = seq.get();
  seqs_.emplace(s->id(), std::move(seq));
  waiting_.insert(KeyOf(*s));
  waiting_seqs_.emplace(s->id(), s);
  return OkStatus();
}

const Sequence* Scheduler::Find(RequestId id) const {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? nullptr : it->second.get();
}

int64_t Scheduler::num_waiting_tokens() const {
  int64_t n = 0;
  for (const auto& [id, s] : waiting_seqs_) n += s->num_uncomputed();
  return n;
}

void Scheduler::InsertRunning(Sequence* s) {
  const Key key = KeyOf(*s);
  auto it = std::lower_bound(running_.begin(), running_.end(), key,
                             [this](Sequence* a, const Key& k) { return KeyOf(*a) < k; });
  running_.insert(it, s);
}

void Scheduler::EraseRunning(Sequence* s) {
  auto it = std::find(running_.begin(), running_.end(), s);
  MOE_CHECK(it != running_.end());
  running_.erase(it);
}

void Scheduler::ReleaseBlocks(Sequence* s) {
  // Tail blocks first, so they are evicted before the (more shareable) head blocks.
  for (auto it = s->block_table.rbegin(); it != s->block_table.rend(); ++it) pool_.Release(*it);
  s->block_table.clear();
}

const std::vector<uint64_t>& Scheduler::FullBlockHashes(Sequence* s, int num_full_blocks) {
  const int bs = config_.block_size;
  std::vector<uint64_t>& hashes = s->block_hashes;
  while (static_cast<int>(hashes.size()) < num_full_blocks) {
    const size_t j = hashes.size();
    const BlockHash parent = j == 0 ? kRootHash : hashes[j - 1];
    hashes.push_back(HashBlock(parent, std::span<const int32_t>(s->tokens).subspan(j * bs, bs)));
  }
  return hashes;
}

StepPlan Scheduler::Schedule() {
  StepPlan plan;
  plan.step = step_ + 1;
  plan.scheduled_ns = MonotonicNanos();
  PlanBlocks blocks(pool_, plan_delta_, plan_claimed_, plan_dirty_);
  const int bs = config_.block_size;
  int budget = config_.max_num_batched_tokens;
  int num_running_after = static_cast<int>(running_.size());
  enum : uint8_t { kUndecided, kScheduled, kPreempted };
  std::vector<uint8_t> state(running_.size(), kUndecided);
  // Running sequences scheduled so far; an entry is dropped when a more important sequence
  // preempts it later in planning.
  struct Entry {
    ScheduledSeq ss;
    bool decode = false;
    bool long_prefill = false;
    bool dropped = false;
  };
  std::vector<Entry> entries;
  std::vector<int> entry_of(running_.size(), -1);
  std::vector<ScheduledSeq> admissions;
  int long_prefills = 0;
  auto is_long = [&](int uncomputed) {
    return config_.long_prefill_threshold > 0 && uncomputed > config_.long_prefill_threshold;
  };
  auto chunk_limit = [&](int n) {
    return config_.chunk_size > 0 ? std::min(n, config_.chunk_size) : n;
  };
  auto preempt = [&](size_t v) {
    state[v] = kPreempted;
    plan.preempted.push_back(running_[v]->id());
    for (auto it = running_[v]->block_table.rbegin(); it != running_[v]->block_table.rend(); ++it) {
      blocks.Release(*it);
    }
    --num_running_after;
  };
  // Takes back a scheduled sequence's step: its budget and the blocks it was given.
  auto unschedule = [&](size_t v) {
    Entry& e = entries[entry_of[v]];
    e.dropped = true;
    budget += e.ss.num_tokens;
    if (e.long_prefill) --long_prefills;
    for (int k = 0; k < e.ss.num_new_blocks; ++k) {
      blocks.Release(e.ss.block_table[e.ss.block_table.size() - 1 - k]);
    }
  };
  // Frees blocks by preempting running sequences after `idx` (lower priority, later arrival),
  // the last one first, until `needed` blocks are available. A victim already scheduled in this
  // plan loses its step.
  auto make_room = [&](size_t idx, int needed) {
    for (size_t v = running_.size(); v-- > idx + 1 && blocks.available() < needed;) {
      if (state[v] == kScheduled) unschedule(v);
      if (state[v] != kPreempted) preempt(v);
    }
    return blocks.available() >= needed;
  };

  // Running sequences: decodes first (pass 0), then continuing prefills (pass 1).
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
      if (state[i] != kUndecided) continue;
      Sequence* s = running_[i];
      const int uncomputed = s->num_uncomputed();
      const bool decode = uncomputed <= 1;
      if (decode != (pass == 0)) continue;
      if (!decode && is_long(uncomputed) && long_prefills >= config_.max_long_partial_prefills) {
        continue;
      }
      int n = std::min(chunk_limit(uncomputed), budget);
      const int start = s->num_computed_tokens;
      const int held = static_cast<int>(s->block_table.size());
      int needed = (start + n + bs - 1) / bs - held;
      if (needed > blocks.available()) {
        // A prefill shrinks its chunk to what fits before anyone is preempted.
        const int fit = (held + blocks.available()) * bs - start;
        if (!decode && fit >= 1) {
          n = fit;
          needed = (start + n + bs - 1) / bs - held;
        } else if (!make_room(i, needed)) {
          preempt(i);  // nothing left to preempt: this one recomputes later
          continue;
        }
      }
      ScheduledSeq ss;
      ss.id = s->id();
      ss.start = start;
      ss.num_tokens = n;
      ss.sample = start + n == s->num_tokens();
      ss.block_table = s->block_table;
      for (int b = 0; b < needed; ++b) ss.block_table.push_back(blocks.Allocate());
      ss.num_new_blocks = std::max(needed, 0);
      state[i] = kScheduled;
      budget -= n;
      const bool long_prefill = !decode && is_long(uncomputed);
      if (long_prefill) ++long_prefills;
      entry_of[i] = static_cast<int>(entries.size());
      entries.push_back(Entry{std::move(ss), decode, long_prefill, false});
    }
  }

  // Waiting sequences in policy order (preempted ones keep their original arrival).
  for (const Key& key : waiting_) {
    if (budget <= 0 || num_running_after >= config_.max_num_seqs) break;
    Sequence* s = waiting_seqs_.at(std::get<2>(key));
    const int total = s->num_tokens();
    // Prefix-cache hits, leaving at least one token to compute (it produces the logits).
    std::vector<BlockId> hits;
    if (pool_.prefix_caching()) {
      const int full = (total - 1) / bs;
      hits = pool_.FindCachedPrefix(FullBlockHashes(s, full), s->tokens);
      // A block this plan already handed to another sequence is no longer a valid hit.
      for (size_t j = 0; j < hits.size(); ++j) {
        if (blocks.Claimed(hits[j])) {
          hits.resize(j);
          break;
        }
      }
    }
    const int cached = static_cast<int>(hits.size()) * bs;
    const int uncomputed = total - cached;
    if (is_long(uncomputed) && long_prefills >= config_.max_long_partial_prefills) continue;
    int hits_on_free = 0;
    for (BlockId b : hits) hits_on_free += blocks.RefCount(b) == 0 ? 1 : 0;
    const int available = blocks.available() - hits_on_free;
    int n = std::min(chunk_limit(uncomputed), budget);
    const int held = static_cast<int>(hits.size());
    int needed = (cached + n + bs - 1) / bs - held;
    if (needed > available) {
      const int fit = (held + available) * bs - cached;
      if (fit < 1) break;  // head of line: later requests wait too
      n = fit;
      needed = (cached + n + bs - 1) / bs - held;
    }
    ScheduledSeq ss;
    ss.id = s->id();
    ss.start = cached;
    ss.num_tokens = n;
    ss.sample = cached + n == total;
    ss.admitted = true;
    for (BlockId b : hits) blocks.Touch(b);
    ss.block_table = hits;
    for (int b = 0; b < needed; ++b) ss.block_table.push_back(blocks.Allocate());
    ss.num_touched_blocks = held;
    ss.num_new_blocks = needed;
    budget -= n;
    if (is_long(uncomputed)) ++long_prefills;
    ++num_running_after;
    admissions.push_back(std::move(ss));
  }

  for (bool decodes : {true, false}) {
    for (Entry& e : entries) {
      if (!e.dropped && e.decode == decodes) plan.seqs.push_back(std::move(e.ss));
    }
  }
  for (ScheduledSeq& ss : admissions) plan.seqs.push_back(std::move(ss));
  for (const ScheduledSeq& ss : plan.seqs) plan.num_tokens += ss.num_tokens;
  return plan;
}

void Scheduler::RegisterComputedBlocks(Sequence* s, int old_computed) {
  if (!pool_.prefix_caching()) return;
  const int bs = config_.block_size;
  const int first = old_computed / bs;
  const int last = s->num_computed_tokens / bs;  // blocks [first, last) are now full
  if (last <= first) return;
  const std::vector<uint64_t>& hashes = FullBlockHashes(s, last);
  for (int j = first; j < last; ++j) {
    const BlockHash parent = j == 0 ? kRootHash : hashes[j - 1];
    pool_.Register(s->block_table[j], parent, hashes[j],
                   std::span<const int32_t>(s->tokens).subspan(static_cast<size_t>(j) * bs, bs));
  }
}

bool Scheduler::CheckStop(Sequence* s) {
  const batching::SamplingParams& p = s->request.sampling;
  const int32_t token = s->tokens.back();
  const bool min_reached = s->num_generated() >= p.min_tokens;
  if (min_reached && !p.ignore_eos &&
      std::find(eos_token_ids_.begin(), eos_token_ids_.end(), token) != eos_token_ids_.end()) {
    s->matched_stop_token = token;
    MoveToFinished(s, FinishReason::kStop);
    return true;
  }
  if (min_reached && std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), token) !=
                         p.stop_token_ids.end()) {
    s->matched_stop_token = token;
    MoveToFinished(s, FinishReason::kStop);
    return true;
  }
  if (s->num_generated() >= MaxNewTokens(*s) || s->num_tokens() >= config_.max_model_len) {
    MoveToFinished(s, FinishReason::kLength);
    return true;
  }
  return false;
}

void Scheduler::MoveToFinished(Sequence* s, FinishReason reason) {
  s->finished_ns = MonotonicNanos();
  if (s->status == batching::SequenceStatus::kRunning) {
    ReleaseBlocks(s);
    EraseRunning(s);
  } else if (s->status == batching::SequenceStatus::kWaiting) {
    waiting_.erase(KeyOf(*s));
    waiting_seqs_.erase(s->id());
  }
  s->status = batching::SequenceStatus::kFinished;
  s->finish_reason = reason;
  auto it = seqs_.find(s->id());
  finished_.push_back(std::move(it->second));
  seqs_.erase(it);
}

bool Scheduler::Finish(RequestId id, FinishReason reason, const std::string& matched_stop) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return false;
  it->second->matched_stop_string = matched_stop;
  MoveToFinished(it->second.get(), reason);
  return true;
}

std::vector<SequenceOutput> Scheduler::Update(const StepPlan& plan, const StepResult& result) {
  MOE_CHECK_EQ(result.samples.size(), plan.seqs.size()) << "result not aligned with the plan";
  const int64_t now = MonotonicNanos();
  step_ = plan.step;
  for (RequestId id : plan.preempted) {
    Sequence* s = seqs_.at(id).get();
    ReleaseBlocks(s);
    EraseRunning(s);
    s->num_computed_tokens = 0;
    s->status = batching::SequenceStatus::kWaiting;
    ++s->num_preemptions;
    ++total_preemptions_;
    waiting_.insert(KeyOf(*s));
    waiting_seqs_.emplace(s->id(), s);
  }
  std::vector<SequenceOutput> outputs;
  outputs.reserve(plan.seqs.size());
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const ScheduledSeq& ss = plan.seqs[i];
    Sequence* s = seqs_.at(ss.id).get();
    if (ss.admitted) {
      // Prefix-cache hits count as computed from the moment the blocks are touched.
      MOE_CHECK_EQ(s->num_computed_tokens, 0) << "admitted request " << ss.id << " has state";
      s->num_computed_tokens = ss.start;
      waiting_.erase(KeyOf(*s));
      waiting_seqs_.erase(s->id());
      for (int j = 0; j < ss.num_touched_blocks; ++j) pool_.Touch(ss.block_table[j]);
      s->status = batching::SequenceStatus::kRunning;
      InsertRunning(s);
      if (s->first_scheduled_ns == 0) {
        // When its first step was planned (the step's compute follows), not when it committed.
        s->first_scheduled_ns = plan.scheduled_ns > 0 ? plan.scheduled_ns : now;
        s->num_cached_tokens = ss.start;
        pool_.RecordLookup(s->num_prompt_tokens, ss.start);
      }
    }
    MOE_CHECK_EQ(ss.start, s->num_computed_tokens) << "plan is stale for request " << ss.id;
    for (size_t j = ss.block_table.size() - ss.num_new_blocks; j < ss.block_table.size(); ++j) {
      pool_.Take(ss.block_table[j]);
    }
    s->block_table = ss.block_table;
    const int old_computed = s->num_computed_tokens;
    s->num_computed_tokens = ss.start + ss.num_tokens;
    RegisterComputedBlocks(s, old_computed);
    ++s->num_steps_scheduled;
    SequenceOutput out;
    out.id = ss.id;
    if (ss.sample) {
      const SampleOutput& sample = result.samples[i];
      MOE_CHECK_GE(sample.token, 0) << "no token sampled for request " << ss.id;
      s->tokens.push_back(sample.token);
      if (s->first_token_ns == 0) {
        s->first_token_ns = now;
        s->batch_size_at_first_token = static_cast<int>(plan.seqs.size());
      } else {
        s->last_itl_ns = now - s->last_token_ns;
        s->max_itl_ns = std::max(s->max_itl_ns, s->last_itl_ns);
      }
      s->last_token_ns = now;
      out.token = sample.token;
      out.sample = sample;
      out.finished = CheckStop(s);
      if (out.finished) s->finished_ns = now;  // ends with its last token (s is still alive)
    }
    outputs.push_back(std::move(out));
  }
  return outputs;
}

std::vector<std::unique_ptr<Sequence>> Scheduler::TakeFinished() {
  std::vector<std::unique_ptr<Sequence>> out;
  out.swap(finished_);
  return out;
}

}  // namespace moe::scheduler
