// Scheduler unit tests driven by fabricated step results (DESIGN.md §2: plans and results are
// plain data). Each test writes its token timeline as comments, one line per step, in the
// notation Describe() produces:
//
//   A*[0,8)+  B[4,6)  | preempt C
//
// A* = request A (id 1; B = id 2, ...) admitted this step; [0,8) = positions computed this step;
// + = the range reaches the last known token, so the step samples the next one; "| preempt C" =
// C's blocks are released and it waits again (recompute). Plan order is batch order: decodes,
// then continuing prefills, then admissions.
//
// The fabricated model samples TokenAt(position): a pure function of the position, so a request's
// output does not depend on batching, chunking or preemption, and tests can predict it.
#include "scheduler/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace moe::scheduler {
namespace {

using batching::FinishReason;
using batching::Request;
using batching::SequenceStatus;

constexpr int32_t kEos = 2;

int32_t TokenAt(int position) { return 500 + position; }

std::vector<int32_t> TokensAt(int first_position, int count) {
  std::vector<int32_t> v;
  for (int p = first_position; p < first_position + count; ++p) v.push_back(TokenAt(p));
  return v;
}

std::vector<int32_t> Iota(int n, int32_t first) {
  std::vector<int32_t> v(n);
  for (int i = 0; i < n; ++i) v[i] = first + i;
  return v;
}

// A request with a prompt unique to its id (no accidental prefix hits) arriving at time `id`.
Request MakeRequest(RequestId id, int prompt_len, std::optional<int> max_tokens) {
  Request r;
  r.id = id;
  r.arrival_ns = static_cast<int64_t>(id);
  r.prompt = Iota(prompt_len, static_cast<int32_t>(1000 * id));
  r.sampling.max_tokens = max_tokens;
  return r;
}

Request WithPrompt(Request r, std::vector<int32_t> prompt) {
  r.prompt = std::move(prompt);
  return r;
}

std::string Name(RequestId id) {
  return id >= 1 && id <= 26 ? std::string(1, static_cast<char>('A' + id - 1))
                             : "#" + std::to_string(id);
}

std::string Describe(const StepPlan& plan) {
  std::string out;
  for (const ScheduledSeq& s : plan.seqs) {
    if (!out.empty()) out += ' ';
    out += Name(s.id) + (s.admitted ? "*" : "") + "[" + std::to_string(s.start) + "," +
           std::to_string(s.start + s.num_tokens) + ")" + (s.sample ? "+" : "");
  }
  if (!plan.preempted.empty()) {
    out += out.empty() ? "| preempt" : " | preempt";
    for (RequestId id : plan.preempted) out += " " + Name(id);
  }
  return out;
}

SchedulerConfig Config(int budget, int num_blocks, int block_size = 4) {
  SchedulerConfig c;
  c.max_num_batched_tokens = budget;
  c.num_blocks = num_blocks;
  c.block_size = block_size;
  // The cache must hold one sequence at the context limit (SchedulerConfig::Validate).
  c.max_model_len = std::min(4096, num_blocks * block_size);
  c.enable_prefix_caching = false;  // prefix caching has its own tests below
  return c;
}

using TokenFn = std::function<int32_t(const ScheduledSeq&)>;

// Answers every sampling sequence of `plan` with fn(seq); the others get no token.
StepResult Answer(const StepPlan& plan, const TokenFn& fn) {
  StepResult r;
  r.samples.resize(plan.seqs.size());
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    if (plan.seqs[i].sample) r.samples[i].token = fn(plan.seqs[i]);
  }
  return r;
}

int32_t TokenAtSamplePosition(const ScheduledSeq& s) { return TokenAt(s.start + s.num_tokens); }

TokenFn Always(int32_t token) {
  return [token](const ScheduledSeq&) { return token; };
}

// Drives a Scheduler one fabricated step at a time and collects finished sequences.
class Driver {
 public:
  explicit Driver(const SchedulerConfig& config, std::vector<int32_t> eos = {kEos})
      : sched(config, std::move(eos)) {}

  Status Add(Request r) { return sched.Add(std::move(r)); }

  StepPlan Step(const TokenFn& fn = TokenAtSamplePosition) {
    StepPlan plan = sched.Schedule();
    outputs = sched.Update(plan, Answer(plan, fn));
    EXPECT_TRUE(sched.pool().CheckInvariants()) << "after step " << plan.step;
    Collect();
    return plan;
  }
  std::string Run(const TokenFn& fn = TokenAtSamplePosition) { return Describe(Step(fn)); }

  void Collect() {
    for (auto& s : sched.TakeFinished()) {
      EXPECT_EQ(finished.count(s->id()), 0u) << Name(s->id()) << " finished twice";
      finished[s->id()] = std::move(s);
    }
  }
  // Runs until no work is left (at most `max_steps`); returns the number of steps.
  int Drain(int max_steps = 1000) {
    int n = 0;
    while (sched.HasWork() && n < max_steps) {
      Step();
      ++n;
    }
    EXPECT_FALSE(sched.HasWork()) << "still working after " << max_steps << " steps";
    return n;
  }
  bool IsFinished(RequestId id) const { return finished.count(id) != 0; }
  const Sequence& Done(RequestId id) const {
    static const Sequence kNone{Request{}};
    auto it = finished.find(id);
    if (it == finished.end()) {
      ADD_FAILURE() << Name(id) << " has not finished";
      return kNone;
    }
    return *it->second;
  }
  std::vector<int32_t> Output(RequestId id) const {
    const Sequence& s = Done(id);
    return std::vector<int32_t>(s.tokens.begin() + s.num_prompt_tokens, s.tokens.end());
  }
  std::vector<RequestId> FinishedIds() const {
    std::vector<RequestId> ids;
    for (const auto& [id, s] : finished) ids.push_back(id);
    return ids;
  }
  std::vector<BlockId> FreeQueue() const {
    std::vector<BlockId> q;
    for (BlockId b = sched.pool().FreeHead(); b >= 0; b = sched.pool().FreeNext(b)) q.push_back(b);
    return q;
  }

  Scheduler sched;
  std::vector<SequenceOutput> outputs;  // of the last step
  std::map<RequestId, std::unique_ptr<Sequence>> finished;
};

// ---------------------------------------------------------------------------------------------
// Continuous batching, chunking, token budget, ordering

TEST(SchedulerBatching, RequestsJoinAndLeaveAtEveryStep) {
  Driver d(Config(/*budget=*/64, /*num_blocks=*/64));
  ASSERT_TRUE(d.Add(MakeRequest(1, 5, 4)).ok());
  // step 1: A*[0,5)+                      A prefill, samples position 5
  EXPECT_EQ(d.Run(), "A*[0,5)+");
  ASSERT_TRUE(d.Add(MakeRequest(2, 3, 2)).ok());
  // step 2: A[5,6)+ B*[0,3)+              B joins while A decodes
  EXPECT_EQ(d.Run(), "A[5,6)+ B*[0,3)+");
  ASSERT_TRUE(d.Add(MakeRequest(3, 2, 1)).ok());
  // step 3: A[6,7)+ B[3,4)+ C*[0,2)+      B (2 tokens) and C (1 token) leave
  StepPlan plan = d.Step();
  EXPECT_EQ(Describe(plan), "A[6,7)+ B[3,4)+ C*[0,2)+");
  EXPECT_EQ(plan.num_tokens, 4);
  EXPECT_EQ(plan.num_samples(), 3);
  ASSERT_EQ(d.outputs.size(), 3u);
  EXPECT_EQ(d.outputs[0].id, 1u);
  EXPECT_EQ(d.outputs[0].token, TokenAt(7));
  EXPECT_FALSE(d.outputs[0].finished);
  EXPECT_EQ(d.outputs[1].id, 2u);
  EXPECT_EQ(d.outputs[1].token, TokenAt(4));
  EXPECT_TRUE(d.outputs[1].finished);
  EXPECT_EQ(d.outputs[2].id, 3u);
  EXPECT_TRUE(d.outputs[2].finished);
  EXPECT_EQ(d.FinishedIds(), (std::vector<RequestId>{2, 3}));
  EXPECT_EQ(d.sched.num_running(), 1);
  // step 4: A[7,8)+                       A's 4th token: length
  EXPECT_EQ(d.Run(), "A[7,8)+");
  EXPECT_FALSE(d.sched.HasWork());
  EXPECT_EQ(d.Output(1), TokensAt(5, 4));
  EXPECT_EQ(d.Output(2), TokensAt(3, 2));
  EXPECT_EQ(d.Output(3), TokensAt(2, 1));
  for (RequestId id : {1, 2, 3}) EXPECT_EQ(d.Done(id).finish_reason, FinishReason::kLength);
  EXPECT_EQ(d.sched.pool().num_free(), 64);
  EXPECT_EQ(d.sched.steps(), 4u);
}

TEST(SchedulerBatching, ChunkSizeLimitsEachPrefillPerStep) {
  SchedulerConfig c = Config(64, 64);
  c.chunk_size = 4;
  Driver d(c);
  ASSERT_TRUE(d.Add(MakeRequest(1, 10, 2)).ok());
  ASSERT_TRUE(d.Add(MakeRequest(2, 6, 2)).ok());
  // step 1: A*[0,4) B*[0,4)               chunk 4 each, no samples yet
  StepPlan p1 = d.Step();
  EXPECT_EQ(Describe(p1), "A*[0,4) B*[0,4)");
  EXPECT_EQ(p1.num_tokens, 8);
  ASSERT_EQ(d.outputs.size(), 2u);
  EXPECT_EQ(d.outputs[0].token, -1);  // a prefill chunk appends nothing
  EXPECT_EQ(d.sched.Find(1)->num_computed_tokens, 4);
  EXPECT_EQ(d.sched.Find(1)->num_tokens(), 10);
  // step 2: A[4,8) B[4,6)+
  EXPECT_EQ(d.Run(), "A[4,8) B[4,6)+");
  // step 3: B[6,7)+ A[8,10)+              B decodes first; B done
  EXPECT_EQ(d.Run(), "B[6,7)+ A[8,10)+");
  EXPECT_TRUE(d.IsFinished(2));
  // step 4: A[10,11)+                     A done
  EXPECT_EQ(d.Run(), "A[10,11)+");
  EXPECT_EQ(d.Output(1), TokensAt(10, 2));
  EXPECT_EQ(d.Output(2), TokensAt(6, 2));
}

TEST(SchedulerBatching, TokenBudgetSplitsPrefillsExactly) {
  Driver d(Config(/*budget=*/12, 64));
  ASSERT_TRUE(d.Add(MakeRequest(1, 8, 3)).ok());
  ASSERT_TRUE(d.Add(MakeRequest(2, 10, 3)).ok());
  ASSERT_TRUE(d.Add(MakeRequest(3, 30, 1)).ok());
  // step 1: A*[0,8)+ B*[0,4)              8 + 4 = 12; C gets nothing
  EXPECT_EQ(d.Run(), "A*[0,8)+ B*[0,4)");
  EXPECT_EQ(d.sched.num_waiting(), 1);
  // step 2: A[8,9)+ B[4,10)+ C*[0,5)      1 + 6 + 5
  EXPECT_EQ(d.Run(), "A[8,9)+ B[4,10)+ C*[0,5)");
  // step 3: A[9,10)+ B[10,11)+ C[5,15)    1 + 1 + 10; A done
  EXPECT_EQ(d.Run(), "A[9,10)+ B[10,11)+ C[5,15)");
  EXPECT_TRUE(d.IsFinished(1));
  // step 4: B[11,12)+ C[15,26)            1 + 11; B done
  EXPECT_EQ(d.Run(), "B[11,12)+ C[15,26)");
  EXPECT_TRUE(d.IsFinished(2));
  // step 5: C[26,30)+                     C done
  StepPlan p5 = d.Step();
  EXPECT_EQ(Describe(p5), "C[26,30)+");
  EXPECT_EQ(p5.num_tokens, 4);
  EXPECT_FALSE(d.sched.HasWork());
  EXPECT_EQ(d.Output(3), TokensAt(30, 1));
}

TEST(SchedulerBatching, StallFreeOrderDecodesThenPrefillsThenAdmissions) {
  Driver d(Config(/*budget=*/8, 64));
  ASSERT_TRUE(d.Add(MakeRequest(1, 3, 10)).ok());
  // step 1: A*[0,3)+
  EXPECT_EQ(d.Run(), "A*[0,3)+");
  ASSERT_TRUE(d.Add(MakeRequest(2, 20, 1)).ok());
  // step 2: A[3,4)+ B*[0,7)               decode first, B takes the rest
  EXPECT_EQ(d.Run(), "A[3,4)+ B*[0,7)");
  ASSERT_TRUE(d.Add(MakeRequest(3, 2, 1)).ok());
  // step 3: A[4,5)+ B[7,14)               the continuing prefill before the admission; C waits
  EXPECT_EQ(d.Run(), "A[4,5)+ B[7,14)");
  EXPECT_EQ(d.sched.num_waiting(), 1);
  // step 4: A[5,6)+ B[14,20)+ C*[0,1)     C admitted with the last budget token; B done
  EXPECT_EQ(d.Run(), "A[5,6)+ B[14,20)+ C*[0,1)");
  // step 5: A[6,7)+ C[1,2)+               C done
  EXPECT_EQ(d.Run(), "A[6,7)+ C[1,2)+");
  EXPECT_EQ(d.FinishedIds(), (std::vector<RequestId>{2, 3}));
}

TEST(SchedulerBatching, DecodeOfALaterRequestPrecedesAnEarlierPrefill) {
  SchedulerConfig c = Config(64, 64);
  c.chunk_size = 4;
  Driver d(c);
  ASSERT_TRUE(d.Add(MakeRequest(1, 12, 1)).ok());
  ASSERT_TRUE(d.Add(MakeRequest(2, 2, 3)).ok());
  // step 1: A*[0,4) B*[0,2)+
  EXPECT_EQ(d.Run(), "A*[0,4) B*[0,2)+");
  // step 2: B[2,3)+ A[4,8)                B decodes first although A arrived first
  EXPECT_EQ(d.Run(), "B[2,3)+ A[4,8)");
  // step 3: B[3,4)+ A[8,12)+              both done
  EXPECT_EQ(d.Run(), "B[3,4)+ A[8,12)+");
  EXPECT_FALSE(d.sched.HasWork());
}

TEST(SchedulerBatching, DecodesNeverStarveBehindALongPrompt) {
  Driver d(Config(/*budget=*/8, 128));
  ASSERT_TRUE(d.Add(MakeRequest(1, 2, 20)).ok());
  // step 1: A*[0,2)+
  EXPECT_EQ(d.Run(), "A*[0,2)+");
  ASSERT_TRUE(d.Add(MakeRequest(2, 200, 1)).ok());
  // step k (k >= 2): A[k,k+1)+ B[7(k-2),7(k-1))   A's decode every step, B gets 7 tokens
  for (int k = 2; k <= 12; ++k) {
    const std::string b = "B" + std::string(k == 2 ? "*" : "") + "[" + std::to_string(7 * (k - 2)) +
                          "," + std::to_string(7 * (k - 1)) + ")";
    EXPECT_EQ(d.Run(), "A[" + std::to_string(k) + "," + std::to_string(k + 1) + ")+ " + b)
        << "step " << k;
  }
}

TEST(SchedulerBatching, LongPrefillThresholdLetsShortPromptsThrough) {
  SchedulerConfig c = Config(64, 64);
  c.chunk_size = 16;
  c.long_prefill_threshold = 8;
  c.max_long_partial_prefills = 1;
  Driver d(c);
  ASSERT_TRUE(d.Add(MakeRequest(1, 40, 1)).ok());  // long
  ASSERT_TRUE(d.Add(MakeRequest(2, 40, 1)).ok());  // long
  ASSERT_TRUE(d.Add(MakeRequest(3, 4, 3)).ok());   // short
  // step 1: A*[0,16) C*[0,4)+             one long prefill; B skipped, C admitted behind it
  EXPECT_EQ(d.Run(), "A*[0,16) C*[0,4)+");
  EXPECT_EQ(d.sched.num_waiting(), 1);
  // step 2: C[4,5)+ A[16,32)              A still long (24 left): B still waits
  EXPECT_EQ(d.Run(), "C[4,5)+ A[16,32)");
  // step 3: C[5,6)+ A[32,40)+ B*[0,16)    A has 8 left (not > 8): B may start; A, C done
  EXPECT_EQ(d.Run(), "C[5,6)+ A[32,40)+ B*[0,16)");
  // step 4: B[16,32)
  EXPECT_EQ(d.Run(), "B[16,32)");
  // step 5: B[32,40)+
  EXPECT_EQ(d.Run(), "B[32,40)+");
  EXPECT_FALSE(d.sched.HasWork());
}

TEST(SchedulerBatching, MaxLongPartialPrefillsTwo) {
  SchedulerConfig c = Config(64, 64);
  c.chunk_size = 16;
  c.long_prefill_threshold = 8;
  c.max_long_partial_prefills = 2;
  Driver d(c);
  ASSERT_TRUE(d.Add(MakeRequest(1, 40, 1)).ok());
  ASSERT_TRUE(d.Add(MakeRequest(2, 40, 1)).ok());
  ASSERT_TRUE(d.Add(MakeRequest(3, 40, 1)).ok());
  ASSERT_TRUE(d.Add(MakeRequest(4, 4, 1)).ok());
  // step 1: A*[0,16) B*[0,16) D*[0,4)+    two long prefills; C waits, D admitted
  EXPECT_EQ(d.Run(), "A*[0,16) B*[0,16) D*[0,4)+");
}

TEST(SchedulerBatching, MaxNumSeqsBoundsRunningSequences) {
  SchedulerConfig c = Config(64, 64);
  c.max_num_seqs = 2;
  Driver d(c);
  ASSERT_TRUE(d.Add(MakeRequest(1, 2, 1)).ok());
  ASSERT_TRUE(d.Add(MakeRequest(2, 2, 2)).ok());
  ASSERT_TRUE(d.Add(MakeRequest(3, 2, 1)).ok());
  // step 1: A*[0,2)+ B*[0,2)+             C waits (2 running); A done
  EXPECT_EQ(d.Run(), "A*[0,2)+ B*[0,2)+");
  EXPECT_EQ(d.sched.num_waiting(), 1);
  // step 2: B[2,3)+ C*[0,2)+              A's slot goes to C; B, C done
  EXPECT_EQ(d.Run(), "B[2,3)+ C*[0,2)+");
  EXPECT_FALSE(d.sched.HasWork());
}

// ---------------------------------------------------------------------------------------------
// Admission errors

TEST(SchedulerAdd, FullWaitingQueueIsResourceExhausted) {
  SchedulerConfig c = Config(64, 64);
  c.max_waiting = 2;
  Driver d(c);
  ASSERT_TRUE(d.Add(MakeRequest(1, 2, 1)).ok());
  ASSERT_TRUE(d.Add(MakeRequest(2, 2, 1)).ok());
  const Status full = d.Add(MakeRequest(3, 2, 1));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  EXPECT_EQ(d.sched.Find(3), nullptr);
  EXPECT_EQ(d.sched.num_waiting(), 2);
  // Admission empties the queue; the request is accepted now.
  EXPECT_EQ(d.Run(), "A*[0,2)+ B*[0,2)+");
  EXPECT_TRUE(d.Add(MakeRequest(3, 2, 1)).ok());
  EXPECT_EQ(d.Run(), "C*[0,2)+");
}

TEST(SchedulerAdd, PromptPlusMaxTokensBeyondContextIsInvalid) {
  SchedulerConfig c = Config(64, 64);
  c.max_model_len = 16;
  Driver d(c);
  EXPECT_EQ(d.Add(MakeRequest(1, 10, 7)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d.sched.Find(1), nullptr);
  EXPECT_TRUE(d.Add(MakeRequest(1, 10, 6)).ok());
  // Without max_tokens, the prompt must leave room for one token.
  EXPECT_EQ(d.Add(MakeRequest(2, 16, std::nullopt)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(d.Add(MakeRequest(2, 15, std::nullopt)).ok());
  EXPECT_EQ(d.Add(MakeRequest(3, 0, 1)).code(), absl::StatusCode::kInvalidArgument);
  // A duplicate id is rejected and does not replace the queued request.
  EXPECT_EQ(d.Add(MakeRequest(1, 3, 1)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d.sched.Find(1)->num_prompt_tokens, 10);
  EXPECT_EQ(d.sched.num_waiting(), 2);
}

// The cache holds at least one sequence at the context limit (Validate), so a request larger than
// the pool is always beyond the context limit: INVALID_ARGUMENT naming the limit.
TEST(SchedulerAdd, RequestLargerThanThePoolIsRefused) {
  Driver d(Config(64, /*num_blocks=*/4, /*block_size=*/4));  // 16 token slots
  const Status too_big = d.Add(MakeRequest(1, 10, 7));       // 17 tokens: 5 blocks
  EXPECT_EQ(too_big.code(), absl::StatusCode::kInvalidArgument) << too_big;
  EXPECT_NE(std::string(too_big.message()).find("context limit"), std::string::npos) << too_big;
  EXPECT_EQ(d.sched.Find(1), nullptr);
  EXPECT_EQ(d.sched.num_waiting(), 0);
  EXPECT_TRUE(d.Add(MakeRequest(1, 10, 6)).ok());  // 16 tokens: 4 blocks
  d.Drain();
  EXPECT_EQ(d.Done(1).finish_reason, FinishReason::kLength);
  EXPECT_EQ(d.Output(1), TokensAt(10, 6));
}

// A request without max_tokens may grow to the context limit; a cache that cannot hold one such
// sequence would make it preempt itself forever, so the configuration is refused up front.
TEST(SchedulerAdd, ContextLongerThanTheWholeCacheIsRefused) {
  SchedulerConfig c = Config(64, /*num_blocks=*/4, /*block_size=*/4);  // 16 token slots
  c.max_model_len = 64;
  const Status st = c.Validate();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(st.message()).find("max_model_len"), std::string::npos) << st;
  c.max_model_len = 16;
  EXPECT_TRUE(c.Validate().ok());
  // At exactly the cache size, an unbounded request runs to the context limit and finishes.
  Driver d(c);
  ASSERT_TRUE(d.Add(MakeRequest(1, 4, std::nullopt)).ok());
  for (int i = 0; i < 300 && d.sched.HasWork(); ++i) d.Step();
  EXPECT_FALSE(d.sched.HasWork());
  EXPECT_TRUE(d.IsFinished(1));
  EXPECT_EQ(d.Done(1).finish_reason, FinishReason::kLength);
}

// ---------------------------------------------------------------------------------------------
// Preemption by recompute

TEST(SchedulerPreemption, FcfsPreemptsTheLatestArrivalAndResumesIt) {
  Driver d(Config(64, /*num_blocks=*/4, /*block_size=*/4));
  ASSERT_TRUE(d.Add(MakeRequest(1, 6, 10)).ok());
  ASSERT_TRUE(d.Add(MakeRequest(2, 6, 10)).ok());
  // step 1: A*[0,6)+ B*[0,6)+             A {0,1}, B {2,3}: the pool is full
  EXPECT_EQ(d.Run(), "A*[0,6)+ B*[0,6)+");
  EXPECT_EQ(d.sched.Find(1)->block_table, (std::vector<BlockId>{0, 1}));
  EXPECT_EQ(d.sched.Find(2)->block_table, (std::vector<BlockId>{2, 3}));
  // step 2: A[6,7)+ B[6,7)+
  EXPECT_EQ(d.Run(), "A[6,7)+ B[6,7)+");
  // step 3: A[7,8)+ B[7,8)+
  EXPECT_EQ(d.Run(), "A[7,8)+ B[7,8)+");
  // step 4: A[8,9)+ | preempt B           A needs a 3rd block; B (later arrival) gives its own
  StepPlan p4 = d.Step();
  EXPECT_EQ(Describe(p4), "A[8,9)+ | preempt B");
  ASSERT_EQ(p4.seqs.size(), 1u);
  EXPECT_EQ(p4.seqs[0].num_new_blocks, 1);
  EXPECT_EQ(p4.seqs[0].block_table, (std::vector<BlockId>{0, 1, 3}));  // B's tail block first
  const Sequence* b = d.sched.Find(2);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->status, SequenceStatus::kWaiting);
  EXPECT_EQ(b->num_computed_tokens, 0);
  EXPECT_TRUE(b->block_table.empty());
  EXPECT_EQ(b->num_preemptions, 1);
  EXPECT_EQ(b->num_tokens(), 9);  // the 3 generated tokens are kept
  EXPECT_EQ(std::vector<int32_t>(b->tokens.begin() + 6, b->tokens.end()), TokensAt(6, 3));
  EXPECT_EQ(d.sched.num_running(), 1);
  EXPECT_EQ(d.sched.num_waiting(), 1);
  EXPECT_EQ(d.sched.total_preemptions(), 1);
  EXPECT_EQ(d.FreeQueue(), (std::vector<BlockId>{2}));
  // step 5: A[9,10)+ B*[0,4)              B recomputes into the one free block
  EXPECT_EQ(d.Run(), "A[9,10)+ B*[0,4)");
  // step 6: A[10,11)+ | preempt B         B's next chunk does not fit and nobody is behind it
  EXPECT_EQ(d.Run(), "A[10,11)+ | preempt B");
  // step 7: A[11,12)+ B*[0,4)
  EXPECT_EQ(d.Run(), "A[11,12)+ B*[0,4)");
  // step 8: A[12,13)+ | preempt B         A's 4th block
  EXPECT_EQ(d.Run(), "A[12,13)+ | preempt B");
  // step 9: A[13,14)+                     no free block: B waits
  EXPECT_EQ(d.Run(), "A[13,14)+");
  // step 10: A[14,15)+                    A's 10th token: done, its blocks return
  EXPECT_EQ(d.Run(), "A[14,15)+");
  EXPECT_TRUE(d.IsFinished(1));
  // step 11: B*[0,9)+                     B recomputes prompt + its 3 tokens, samples its 4th
  EXPECT_EQ(d.Run(), "B*[0,9)+");
  d.Drain();
  EXPECT_EQ(d.Output(1), TokensAt(6, 10));
  EXPECT_EQ(d.Output(2), TokensAt(6, 10));  // identical to an uninterrupted run
  EXPECT_EQ(d.Done(2).finish_reason, FinishReason::kLength);
  EXPECT_EQ(d.Done(2).num_preemptions, 3);
  EXPECT_EQ(d.Done(1).num_preemptions, 0);
  EXPECT_EQ(d.sched.total_preemptions(), 3);
  EXPECT_EQ(d.sched.pool().num_free(), 4);
}

TEST(SchedulerPreemption, PriorityPolicyPreemptsTheLeastImportant) {
  SchedulerConfig c = Config(64, 4, 4);
  c.policy = SchedulingPolicy::kPriority;
  Driver d(c);
  Request a = MakeRequest(1, 6, 10);
  a.priority = 1;  // arrives first but matters less
  Request b = MakeRequest(2, 6, 10);
  b.priority = 0;
  ASSERT_TRUE(d.Add(a).ok());
  ASSERT_TRUE(d.Add(b).ok());
  // step 1: B*[0,6)+ A*[0,6)+             policy order: B first
  EXPECT_EQ(d.Run(), "B*[0,6)+ A*[0,6)+");
  // step 2: B[6,7)+ A[6,7)+
  EXPECT_EQ(d.Run(), "B[6,7)+ A[6,7)+");
  // step 3: B[7,8)+ A[7,8)+
  EXPECT_EQ(d.Run(), "B[7,8)+ A[7,8)+");
  // step 4: B[8,9)+ | preempt A           priority 1 > 0: A goes, although B arrived later
  EXPECT_EQ(d.Run(), "B[8,9)+ | preempt A");
  EXPECT_EQ(d.sched.Find(1)->status, SequenceStatus::kWaiting);
  EXPECT_EQ(d.sched.Find(1)->num_computed_tokens, 0);
  d.Drain();
  EXPECT_EQ(d.Output(1), TokensAt(6, 10));
  EXPECT_EQ(d.Output(2), TokensAt(6, 10));
  EXPECT_EQ(d.Done(2).num_preemptions, 0);
  EXPECT_GE(d.Done(1).num_preemptions, 1);
  EXPECT_EQ(d.sched.pool().num_free(), 4);
}

TEST(SchedulerPreemption, FcfsIgnoresPriorityValues) {
  Driver d(Config(64, 4, 4));  // FCFS
  Request a = MakeRequest(1, 6, 10);
  a.priority = 1;
  Request b = MakeRequest(2, 6, 10);
  b.priority = 0;
  ASSERT_TRUE(d.Add(a).ok());
  ASSERT_TRUE(d.Add(b).ok());
  EXPECT_EQ(d.Run(), "A*[0,6)+ B*[0,6)+");
  d.Step();
  d.Step();
  // step 4: A[8,9)+ | preempt B           arrival order decides
  EXPECT_EQ(d.Run(), "A[8,9)+ | preempt B");
}

TEST(SchedulerPreemption, OnlyAsManyAsNeededFromTheBack) {
  Driver d(Config(64, /*num_blocks=*/3, /*block_size=*/4));
  ASSERT_TRUE(d.Add(MakeRequest(1, 4, 4)).ok());
  ASSERT_TRUE(d.Add(MakeRequest(2, 2, 4)).ok());
  ASSERT_TRUE(d.Add(MakeRequest(3, 2, 4)).ok());
  // step 1: A*[0,4)+ B*[0,2)+ C*[0,2)+    one block each
  EXPECT_EQ(d.Run(), "A*[0,4)+ B*[0,2)+ C*[0,2)+");
  // step 2: A[4,5)+ B[2,3)+ | preempt C   A needs a block: C (latest) goes, B stays
  EXPECT_EQ(d.Run(), "A[4,5)+ B[2,3)+ | preempt C");
  EXPECT_EQ(d.sched.Find(1)->block_table, (std::vector<BlockId>{0, 2}));
  EXPECT_EQ(d.sched.Find(2)->status, SequenceStatus::kRunning);
  d.Drain();
  for (RequestId id : {1, 2, 3}) {
    EXPECT_EQ(d.Done(id).finish_reason, FinishReason::kLength) << Name(id);
  }
  EXPECT_EQ(d.Output(3), TokensAt(2, 4));
  EXPECT_EQ(d.sched.pool().num_free(), 3);
}

TEST(SchedulerPreemption, RunningPrefillShrinksItsChunkBeforeAnyonePreempts) {
  SchedulerConfig c = Config(64, /*num_blocks=*/4, 4);
  c.chunk_size = 8;
  Driver d(c);
  ASSERT_TRUE(d.Add(MakeRequest(1, 14, 1)).ok());
  ASSERT_TRUE(d.Add(MakeRequest(2, 2, 6)).ok());
  // step 1: A*[0,8) B*[0,2)+              A {0,1}, B {2}
  EXPECT_EQ(d.Run(), "A*[0,8) B*[0,2)+");
  // step 2: B[2,3)+ A[8,12)               A's 6-token chunk needs 2 blocks, 1 is free: it
  //                                       computes the 4 tokens that fit
  StepPlan p2 = d.Step();
  EXPECT_EQ(Describe(p2), "B[2,3)+ A[8,12)");
  EXPECT_EQ(p2.seqs[1].block_table, (std::vector<BlockId>{0, 1, 3}));
  EXPECT_EQ(d.sched.total_preemptions(), 0);
  d.Drain();
  EXPECT_EQ(d.Output(1), TokensAt(14, 1));
  EXPECT_EQ(d.Output(2), TokensAt(2, 6));
  EXPECT_EQ(d.sched.pool().num_free(), 4);
}

// Issue 4: "preemption by recompute when blocks run out (lowest priority, latest arrival
// first)". A high-priority prefill that runs out of blocks must preempt the low-priority decode,
// not itself, even though decodes are planned first (vLLM pops the lowest-priority running
// request, scheduled or not, and gives its budget back).
TEST(SchedulerPreemption, HighPriorityPrefillIsNotPreemptedInFavourOfALowPriorityDecode) {
  SchedulerConfig c = Config(64, /*num_blocks=*/4, 4);
  c.chunk_size = 8;
  c.policy = SchedulingPolicy::kPriority;
  Driver d(c);
  Request a = MakeRequest(1, 14, 1);
  a.priority = 0;
  Request b = MakeRequest(2, 2, 6);
  b.priority = 5;
  ASSERT_TRUE(d.Add(a).ok());
  ASSERT_TRUE(d.Add(b).ok());
  // step 1: A*[0,8) B*[0,2)+              A {0,1}, B {2}
  EXPECT_EQ(d.Run(), "A*[0,8) B*[0,2)+");
  // step 2: B[2,3)+ A[8,12)               A takes the last free block
  EXPECT_EQ(d.Run(), "B[2,3)+ A[8,12)");
  // step 3: A[12,14)+ | preempt B         A needs one more block: B (priority 5) gives it
  EXPECT_EQ(d.Run(), "A[12,14)+ | preempt B");
  d.Drain();
  EXPECT_EQ(d.Done(1).num_preemptions, 0);
  EXPECT_EQ(d.Output(2), TokensAt(2, 6));
}

// ---------------------------------------------------------------------------------------------
// Finish / abort

TEST(SchedulerFinish, AbortOfAWaitingRequest) {
  Driver d(Config(64, 16));
  ASSERT_TRUE(d.Add(MakeRequest(1, 4, 4)).ok());
  EXPECT_TRUE(d.sched.Finish(1, FinishReason::kAbort));
  EXPECT_FALSE(d.sched.Finish(1, FinishReason::kAbort));   // already finished
  EXPECT_FALSE(d.sched.Finish(42, FinishReason::kAbort));  // unknown
  EXPECT_FALSE(d.sched.HasWork());
  EXPECT_EQ(d.sched.num_waiting(), 0);
  EXPECT_EQ(d.sched.Find(1), nullptr);
  auto done = d.sched.TakeFinished();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0]->id(), 1u);
  EXPECT_EQ(done[0]->finish_reason, FinishReason::kAbort);
  EXPECT_EQ(done[0]->status, SequenceStatus::kFinished);
  EXPECT_TRUE(d.sched.TakeFinished().empty());
  EXPECT_TRUE(d.sched.Schedule().empty());
}

TEST(SchedulerFinish, AbortOfRunningRequestsFreesTheirBlocks) {
  Driver d(Config(64, 8));
  ASSERT_TRUE(d.Add(MakeRequest(1, 6, 10)).ok());
  ASSERT_TRUE(d.Add(MakeRequest(2, 6, 10)).ok());
  // step 1: A*[0,6)+ B*[0,6)+
  EXPECT_EQ(d.Run(), "A*[0,6)+ B*[0,6)+");
  EXPECT_EQ(d.sched.pool().num_free(), 4);
  EXPECT_TRUE(d.sched.Finish(1, FinishReason::kAbort));
  EXPECT_EQ(d.sched.pool().num_free(), 6);
  EXPECT_EQ(d.sched.num_running(), 1);
  EXPECT_TRUE(d.sched.pool().CheckInvariants());
  // step 2: B[6,7)+                       A is gone from the very next step
  EXPECT_EQ(d.Run(), "B[6,7)+");
  EXPECT_TRUE(d.sched.Finish(2, FinishReason::kAbort));
  EXPECT_EQ(d.sched.pool().num_free(), 8);
  d.Collect();
  EXPECT_EQ(d.FinishedIds(), (std::vector<RequestId>{1, 2}));
  for (RequestId id : {1, 2}) {
    EXPECT_EQ(d.Done(id).finish_reason, FinishReason::kAbort);
    EXPECT_TRUE(d.Done(id).block_table.empty());
  }
  EXPECT_EQ(d.Output(2), TokensAt(6, 2));
  EXPECT_FALSE(d.sched.HasWork());
  EXPECT_TRUE(d.sched.Schedule().empty());
}

TEST(SchedulerFinish, AbortOfAPreemptedRequest) {
  Driver d(Config(64, 4, 4));
  ASSERT_TRUE(d.Add(MakeRequest(1, 6, 10)).ok());
  ASSERT_TRUE(d.Add(MakeRequest(2, 6, 10)).ok());
  for (int i = 0; i < 3; ++i) d.Step();
  EXPECT_EQ(d.Run(), "A[8,9)+ | preempt B");
  EXPECT_TRUE(d.sched.Finish(2, FinishReason::kAbort));
  // step 5: A[9,10)+                      nothing left of B
  EXPECT_EQ(d.Run(), "A[9,10)+");
  d.Drain();
  EXPECT_EQ(d.Done(2).finish_reason, FinishReason::kAbort);
  EXPECT_EQ(d.Output(2), TokensAt(6, 3));
  EXPECT_EQ(d.Done(1).finish_reason, FinishReason::kLength);
  EXPECT_EQ(d.sched.pool().num_free(), 4);
}

TEST(SchedulerFinish, StopStringFinishRecordsTheMatch) {
  Driver d(Config(64, 16));
  ASSERT_TRUE(d.Add(MakeRequest(1, 4, 8)).ok());
  d.Step();
  EXPECT_TRUE(d.sched.Finish(1, FinishReason::kStop, "</s>"));
  d.Collect();
  EXPECT_EQ(d.Done(1).finish_reason, FinishReason::kStop);
  EXPECT_EQ(d.Done(1).matched_stop_string, "</s>");
  EXPECT_EQ(d.sched.pool().num_free(), 16);
}

// ---------------------------------------------------------------------------------------------
// Stop conditions

TEST(SchedulerStop, EosStops) {
  Driver d(Config(64, 16), {kEos, 9});
  ASSERT_TRUE(d.Add(MakeRequest(1, 3, 10)).ok());
  ASSERT_TRUE(d.Add(MakeRequest(2, 3, 10)).ok());
  d.Step(Always(7));
  EXPECT_TRUE(d.finished.empty());
  d.Step([](const ScheduledSeq& s) { return s.id == 1 ? kEos : 9; });  // both are EOS ids
  for (RequestId id : {1, 2}) {
    EXPECT_EQ(d.Done(id).finish_reason, FinishReason::kStop);
    EXPECT_EQ(d.Done(id).num_generated(), 2);
  }
  EXPECT_EQ(d.Done(1).matched_stop_token, kEos);
  EXPECT_EQ(d.Done(2).matched_stop_token, 9);
  EXPECT_EQ(d.Output(1), (std::vector<int32_t>{7, kEos}));
  EXPECT_EQ(d.sched.pool().num_free(), 16);
}

TEST(SchedulerStop, IgnoreEosRunsToMaxTokens) {
  Driver d(Config(64, 16));
  Request r = MakeRequest(1, 3, 3);
  r.sampling.ignore_eos = true;
  ASSERT_TRUE(d.Add(r).ok());
  d.Step(Always(kEos));
  d.Step(Always(kEos));
  EXPECT_TRUE(d.finished.empty());
  d.Step(Always(kEos));
  EXPECT_EQ(d.Done(1).finish_reason, FinishReason::kLength);
  EXPECT_EQ(d.Done(1).matched_stop_token, -1);
  EXPECT_EQ(d.Output(1), (std::vector<int32_t>{kEos, kEos, kEos}));
}

TEST(SchedulerStop, StopTokenIdsStopEvenWithIgnoreEos) {
  Driver d(Config(64, 16));
  Request r = MakeRequest(1, 3, 10);
  r.sampling.stop_token_ids = {77, 78};
  r.sampling.ignore_eos = true;
  ASSERT_TRUE(d.Add(r).ok());
  d.Step(Always(kEos));
  d.Step(Always(5));
  EXPECT_TRUE(d.finished.empty());
  d.Step(Always(78));
  EXPECT_EQ(d.Done(1).finish_reason, FinishReason::kStop);
  EXPECT_EQ(d.Done(1).matched_stop_token, 78);
  EXPECT_EQ(d.Output(1), (std::vector<int32_t>{kEos, 5, 78}));
}

TEST(SchedulerStop, MinTokensDelaysEosAndStopTokens) {
  Driver d(Config(64, 16));
  Request a = MakeRequest(1, 3, 10);
  a.sampling.min_tokens = 3;
  Request b = MakeRequest(2, 3, 10);
  b.sampling.min_tokens = 2;
  b.sampling.stop_token_ids = {77};
  ASSERT_TRUE(d.Add(a).ok());
  ASSERT_TRUE(d.Add(b).ok());
  auto fn = [](const ScheduledSeq& s) { return s.id == 1 ? kEos : 77; };
  // A: EOS, EOS ignored (1 and 2 < min 3); B: 77 ignored (1 < 2)
  d.Step(fn);
  EXPECT_TRUE(d.finished.empty());
  // B's second 77 stops it (2 >= 2)
  d.Step(fn);
  EXPECT_TRUE(d.IsFinished(2));
  EXPECT_FALSE(d.IsFinished(1));
  // A's third EOS stops it (3 >= 3)
  d.Step(fn);
  EXPECT_EQ(d.Done(1).finish_reason, FinishReason::kStop);
  EXPECT_EQ(d.Done(1).num_generated(), 3);
  EXPECT_EQ(d.Done(2).finish_reason, FinishReason::kStop);
  EXPECT_EQ(d.Done(2).num_generated(), 2);
}

TEST(SchedulerStop, MaxTokensFinishesWithLength) {
  Driver d(Config(64, 16));
  ASSERT_TRUE(d.Add(MakeRequest(1, 3, 1)).ok());
  ASSERT_TRUE(d.Add(MakeRequest(2, 3, 4)).ok());
  d.Drain();
  EXPECT_EQ(d.Done(1).finish_reason, FinishReason::kLength);
  EXPECT_EQ(d.Done(1).num_generated(), 1);
  EXPECT_EQ(d.Done(2).num_generated(), 4);
  EXPECT_EQ(d.Done(2).matched_stop_token, -1);
}

TEST(SchedulerStop, ContextLimitFinishesWithLength) {
  SchedulerConfig c = Config(64, 16);
  c.max_model_len = 12;
  Driver d(c);
  ASSERT_TRUE(d.Add(MakeRequest(1, 8, std::nullopt)).ok());
  EXPECT_EQ(d.sched.MaxNewTokens(*d.sched.Find(1)), 4);
  d.Drain();
  EXPECT_EQ(d.Done(1).finish_reason, FinishReason::kLength);
  EXPECT_EQ(d.Done(1).num_tokens(), 12);
  EXPECT_EQ(d.Output(1), TokensAt(8, 4));
}

// ---------------------------------------------------------------------------------------------
// Schedule() plans without mutating

bool SamePlan(const StepPlan& a, const StepPlan& b) {
  if (a.step != b.step || a.num_tokens != b.num_tokens || a.preempted != b.preempted ||
      a.seqs.size() != b.seqs.size()) {
    return false;
  }
  for (size_t i = 0; i < a.seqs.size(); ++i) {
    const ScheduledSeq& x = a.seqs[i];
    const ScheduledSeq& y = b.seqs[i];
    if (x.id != y.id || x.start != y.start || x.num_tokens != y.num_tokens ||
        x.sample != y.sample || x.admitted != y.admitted || x.block_table != y.block_table ||
        x.num_touched_blocks != y.num_touched_blocks || x.num_new_blocks != y.num_new_blocks) {
      return false;
    }
  }
  return true;
}

// Everything observable about the scheduler and its pool.
struct Snapshot {
  std::vector<BlockId> free_queue;
  std::vector<int> refcounts;
  int64_t queried = 0, hits = 0;
  int running = 0, waiting = 0;
  uint64_t steps = 0;
  std::map<RequestId, std::tuple<int, std::vector<int32_t>, std::vector<BlockId>, int>> seqs;
  bool operator==(const Snapshot&) const = default;
};

Snapshot SnapshotOf(const Driver& d, const std::vector<RequestId>& ids) {
  Snapshot s;
  s.free_queue = d.FreeQueue();
  for (BlockId b = 0; b < d.sched.pool().num_blocks(); ++b) {
    s.refcounts.push_back(d.sched.pool().refcount(b));
  }
  s.queried = d.sched.pool().queried_tokens();
  s.hits = d.sched.pool().hit_tokens();
  s.running = d.sched.num_running();
  s.waiting = d.sched.num_waiting();
  s.steps = d.sched.steps();
  for (RequestId id : ids) {
    if (const Sequence* q = d.sched.Find(id)) {
      s.seqs[id] = {q->num_computed_tokens, q->tokens, q->block_table, static_cast<int>(q->status)};
    }
  }
  return s;
}

TEST(SchedulerPlanning, ScheduleTwiceWithoutUpdateGivesTheSamePlan) {
  SchedulerConfig c = Config(/*budget=*/16, /*num_blocks=*/6, 4);
  c.chunk_size = 8;
  Driver d(c);
  ASSERT_TRUE(d.Add(MakeRequest(1, 6, 10)).ok());
  ASSERT_TRUE(d.Add(MakeRequest(2, 6, 10)).ok());
  ASSERT_TRUE(d.Add(MakeRequest(3, 9, 2)).ok());
  // step 1: A*[0,6)+ B*[0,6)+ C*[0,4)     C fits 4 tokens in the budget
  EXPECT_EQ(d.Run(), "A*[0,6)+ B*[0,6)+ C*[0,4)");
  ASSERT_TRUE(d.Add(MakeRequest(4, 3, 1)).ok());
  const std::vector<RequestId> ids = {1, 2, 3, 4};
  // Walk until a plan preempts, checking every plan on the way.
  bool saw_preemption = false;
  for (int step = 2; step < 40 && d.sched.HasWork(); ++step) {
    const Snapshot before = SnapshotOf(d, ids);
    const StepPlan p1 = d.sched.Schedule();
    EXPECT_TRUE(SnapshotOf(d, ids) == before) << "Schedule mutated state at step " << step;
    const StepPlan p2 = d.sched.Schedule();
    EXPECT_TRUE(SamePlan(p1, p2)) << Describe(p1) << " vs " << Describe(p2);
    EXPECT_TRUE(SnapshotOf(d, ids) == before);
    saw_preemption |= !p2.preempted.empty();
    d.outputs = d.sched.Update(p2, Answer(p2, TokenAtSamplePosition));
    ASSERT_TRUE(d.sched.pool().CheckInvariants());
    d.Collect();
  }
  EXPECT_TRUE(saw_preemption);
  EXPECT_FALSE(d.sched.HasWork());
  EXPECT_EQ(d.Output(1), TokensAt(6, 10));
  EXPECT_EQ(d.Output(2), TokensAt(6, 10));
  EXPECT_EQ(d.Output(3), TokensAt(9, 2));
  EXPECT_EQ(d.sched.pool().num_free(), 6);
}

TEST(SchedulerPlanning, ScheduleWithPrefixHitsDoesNotTouchThePool) {
  SchedulerConfig c = Config(64, 16, 4);
  c.enable_prefix_caching = true;
  Driver d(c);
  ASSERT_TRUE(d.Add(WithPrompt(MakeRequest(1, 0, 1), Iota(12, 100))).ok());
  EXPECT_EQ(d.Run(), "A*[0,12)+");  // A done; its 3 full blocks stay cached in the free queue
  ASSERT_TRUE(d.Add(WithPrompt(MakeRequest(2, 0, 1), Iota(14, 100))).ok());
  const Snapshot before = SnapshotOf(d, {2});
  const StepPlan p1 = d.sched.Schedule();
  const StepPlan p2 = d.sched.Schedule();
  EXPECT_TRUE(SamePlan(p1, p2));
  EXPECT_TRUE(SnapshotOf(d, {2}) == before);
  // B*[12,14)+ with A's three blocks as hits.
  EXPECT_EQ(Describe(p1), "B*[12,14)+");
  ASSERT_EQ(p1.seqs.size(), 1u);
  EXPECT_EQ(p1.seqs[0].num_touched_blocks, 3);
  EXPECT_EQ(d.sched.pool().num_free(), 16);
  EXPECT_EQ(d.sched.pool().hit_tokens(), 0);
}

// ---------------------------------------------------------------------------------------------
// KV accounting order

TEST(SchedulerBlocks, FinishedSequenceReleasesItsTailBlocksFirst) {
  Driver d(Config(64, 6, 4));
  ASSERT_TRUE(d.Add(MakeRequest(1, 10, 1)).ok());
  // step 1: A*[0,10)+                     blocks {0,1,2}; A done
  EXPECT_EQ(d.Run(), "A*[0,10)+");
  // The tail block is evicted first: it is the least shareable.
  EXPECT_EQ(d.FreeQueue(), (std::vector<BlockId>{3, 4, 5, 2, 1, 0}));
}

TEST(SchedulerBlocks, AllocationTakesTheFreeQueueHead) {
  Driver d(Config(64, 6, 4));
  ASSERT_TRUE(d.Add(MakeRequest(1, 10, 1)).ok());
  d.Step();  // queue 3 4 5 2 1 0
  ASSERT_TRUE(d.Add(MakeRequest(2, 9, 2)).ok());
  StepPlan p = d.Step();
  EXPECT_EQ(Describe(p), "B*[0,9)+");
  EXPECT_EQ(p.seqs[0].block_table, (std::vector<BlockId>{3, 4, 5}));
  EXPECT_EQ(p.seqs[0].num_new_blocks, 3);
  EXPECT_EQ(p.seqs[0].num_touched_blocks, 0);
}

// ---------------------------------------------------------------------------------------------
// Prefix caching

SchedulerConfig PrefixConfig(int num_blocks) {
  SchedulerConfig c = Config(64, num_blocks, 4);
  c.enable_prefix_caching = true;
  return c;
}

TEST(SchedulerPrefixCache, SharedPrefixComputesOnlyTheNewBlocks) {
  Driver d(PrefixConfig(32));
  const std::vector<int32_t> a_prompt = Iota(20, 100);  // 5 full blocks
  ASSERT_TRUE(d.Add(WithPrompt(MakeRequest(1, 0, 5), a_prompt)).ok());
  // step 1: A*[0,20)+                     A {0,1,2,3,4}
  EXPECT_EQ(d.Run(), "A*[0,20)+");
  EXPECT_EQ(d.sched.pool().queried_tokens(), 20);
  EXPECT_EQ(d.sched.pool().hit_tokens(), 0);
  std::vector<int32_t> b_prompt(a_prompt.begin(), a_prompt.begin() + 16);
  for (int32_t t : Iota(6, 900)) b_prompt.push_back(t);  // 4 shared blocks + 6 new tokens
  ASSERT_TRUE(d.Add(WithPrompt(MakeRequest(2, 0, 2), b_prompt)).ok());
  // step 2: A[20,21)+ B*[16,22)+          B starts at 16 (4 cached blocks); A takes block 5
  StepPlan p2 = d.Step();
  EXPECT_EQ(Describe(p2), "A[20,21)+ B*[16,22)+");
  ASSERT_EQ(p2.seqs.size(), 2u);
  EXPECT_EQ(p2.seqs[1].block_table, (std::vector<BlockId>{0, 1, 2, 3, 6, 7}));
  EXPECT_EQ(p2.seqs[1].num_touched_blocks, 4);
  EXPECT_EQ(p2.seqs[1].num_new_blocks, 2);
  EXPECT_EQ(p2.num_tokens, 7);
  for (BlockId b : {0, 1, 2, 3}) EXPECT_EQ(d.sched.pool().refcount(b), 2) << "block " << b;
  EXPECT_EQ(d.sched.pool().refcount(4), 1);
  EXPECT_EQ(d.sched.pool().num_used(), 8);
  EXPECT_EQ(d.sched.pool().queried_tokens(), 42);
  EXPECT_EQ(d.sched.pool().hit_tokens(), 16);
  EXPECT_EQ(d.sched.Find(2)->num_cached_tokens, 16);
  EXPECT_EQ(d.sched.Find(2)->num_computed_tokens, 22);
  d.Drain();
  EXPECT_EQ(d.Output(1), TokensAt(20, 5));
  EXPECT_EQ(d.Output(2), TokensAt(22, 2));
  EXPECT_EQ(d.sched.pool().num_free(), 32);
}

TEST(SchedulerPrefixCache, IdenticalPromptLeavesTheLastBlockToCompute) {
  Driver d(PrefixConfig(8));
  const std::vector<int32_t> prompt = Iota(20, 100);
  ASSERT_TRUE(d.Add(WithPrompt(MakeRequest(1, 0, 1), prompt)).ok());
  // step 1: A*[0,20)+                     A {0..4}; A done, blocks cached in the free queue
  EXPECT_EQ(d.Run(), "A*[0,20)+");
  EXPECT_EQ(d.FreeQueue(), (std::vector<BlockId>{5, 6, 7, 4, 3, 2, 1, 0}));
  ASSERT_TRUE(d.Add(WithPrompt(MakeRequest(2, 0, 1), prompt)).ok());
  // step 2: B*[16,20)+                    4 hits; the 5th block is recomputed for the logits
  StepPlan p = d.Step();
  EXPECT_EQ(Describe(p), "B*[16,20)+");
  EXPECT_EQ(p.seqs[0].block_table, (std::vector<BlockId>{0, 1, 2, 3, 5}));
  EXPECT_EQ(d.sched.pool().hit_tokens(), 16);
  EXPECT_EQ(d.sched.pool().queried_tokens(), 40);
  EXPECT_DOUBLE_EQ(d.sched.pool().hit_rate(), 0.4);
  EXPECT_EQ(d.Done(2).num_cached_tokens, 16);
  EXPECT_EQ(d.Output(2), TokensAt(20, 1));
  EXPECT_EQ(d.sched.pool().num_free(), 8);
}

TEST(SchedulerPrefixCache, DisabledCacheGivesNoHits) {
  Driver d(Config(64, 16, 4));
  const std::vector<int32_t> prompt = Iota(12, 100);
  ASSERT_TRUE(d.Add(WithPrompt(MakeRequest(1, 0, 1), prompt)).ok());
  d.Step();
  ASSERT_TRUE(d.Add(WithPrompt(MakeRequest(2, 0, 1), prompt)).ok());
  EXPECT_EQ(d.Run(), "B*[0,12)+");
  EXPECT_EQ(d.sched.pool().hit_tokens(), 0);
}

TEST(SchedulerPrefixCache, ConcurrentIdenticalPromptsThenALaterHit) {
  Driver d(PrefixConfig(16));
  const std::vector<int32_t> prompt = Iota(8, 100);
  ASSERT_TRUE(d.Add(WithPrompt(MakeRequest(1, 0, 3), prompt)).ok());
  ASSERT_TRUE(d.Add(WithPrompt(MakeRequest(2, 0, 3), prompt)).ok());
  // step 1: A*[0,8)+ B*[0,8)+             nothing cached yet: both compute; A's copy is cached
  StepPlan p1 = d.Step();
  EXPECT_EQ(Describe(p1), "A*[0,8)+ B*[0,8)+");
  EXPECT_EQ(p1.seqs[1].block_table, (std::vector<BlockId>{2, 3}));
  ASSERT_TRUE(d.Add(WithPrompt(MakeRequest(3, 0, 2), prompt)).ok());
  // step 2: A[8,9)+ B[8,9)+ C*[4,8)+      C hits A's first block (A's, not B's)
  StepPlan p2 = d.Step();
  EXPECT_EQ(Describe(p2), "A[8,9)+ B[8,9)+ C*[4,8)+");
  ASSERT_EQ(p2.seqs.size(), 3u);
  EXPECT_EQ(p2.seqs[2].block_table.front(), 0);
  EXPECT_EQ(d.sched.pool().refcount(0), 2);
  EXPECT_EQ(d.sched.pool().refcount(2), 1);
  d.Drain();
  EXPECT_EQ(d.sched.pool().num_free(), 16);
}

TEST(SchedulerPrefixCache, HitOnABlockThisPlanAllocatesIsDropped) {
  Driver d(PrefixConfig(8));
  ASSERT_TRUE(d.Add(WithPrompt(MakeRequest(1, 0, 1), Iota(8, 100))).ok());
  ASSERT_TRUE(d.Add(MakeRequest(3, 8, 2)).ok());
  // step 1: A*[0,8)+ C*[0,8)+             A {0,1} done; C {2,3}
  EXPECT_EQ(d.Run(), "A*[0,8)+ C*[0,8)+");
  // step 2: C[8,9)+                       C takes block 4, done; free queue 5 6 7 1 0 4 3 2
  EXPECT_EQ(d.Run(), "C[8,9)+");
  EXPECT_EQ(d.FreeQueue(), (std::vector<BlockId>{5, 6, 7, 1, 0, 4, 3, 2}));
  // D arrives before B; D's 4 blocks are 5 6 7 1, so B's hit on block 1 is void.
  Request dreq = MakeRequest(4, 16, 1);
  dreq.arrival_ns = 3;
  std::vector<int32_t> b_prompt = Iota(8, 100);
  for (int32_t t : Iota(4, 900)) b_prompt.push_back(t);
  Request breq = WithPrompt(MakeRequest(2, 0, 1), b_prompt);
  breq.arrival_ns = 10;
  ASSERT_TRUE(d.Add(dreq).ok());
  ASSERT_TRUE(d.Add(breq).ok());
  // step 3: D*[0,16)+ B*[4,12)+           B keeps its hit on block 0 only
  StepPlan p3 = d.Step();
  EXPECT_EQ(Describe(p3), "D*[0,16)+ B*[4,12)+");
  ASSERT_EQ(p3.seqs.size(), 2u);
  EXPECT_EQ(p3.seqs[0].block_table, (std::vector<BlockId>{5, 6, 7, 1}));
  EXPECT_EQ(p3.seqs[1].block_table, (std::vector<BlockId>{0, 4, 3}));
  EXPECT_EQ(p3.seqs[1].num_touched_blocks, 1);
  EXPECT_EQ(p3.seqs[1].num_new_blocks, 2);
  EXPECT_EQ(d.sched.pool().num_free(), 8);
}

TEST(SchedulerPrefixCache, PreemptedSequenceResumesFromItsCachedBlocks) {
  Driver d(PrefixConfig(6));
  ASSERT_TRUE(d.Add(MakeRequest(1, 6, 10)).ok());
  ASSERT_TRUE(d.Add(MakeRequest(2, 6, 10)).ok());
  // step 1: A*[0,6)+ B*[0,6)+             A {0,1}, B {2,3}
  EXPECT_EQ(d.Run(), "A*[0,6)+ B*[0,6)+");
  // steps 2-3: A[6,7)+ B[6,7)+, A[7,8)+ B[7,8)+
  d.Step();
  d.Step();
  // step 4: A[8,9)+ B[8,9)+               A takes 4, B takes 5: the pool is full
  EXPECT_EQ(d.Run(), "A[8,9)+ B[8,9)+");
  // steps 5-7: both decode within their third block
  for (int k = 9; k < 12; ++k) {
    EXPECT_EQ(d.Run(), "A[" + std::to_string(k) + "," + std::to_string(k + 1) + ")+ B[" +
                           std::to_string(k) + "," + std::to_string(k + 1) + ")+");
  }
  // step 8: A[12,13)+ | preempt B         B's full blocks 2 3 5 are released tail first; A
  //                                       takes 5, so 2 and 3 (B's positions 0-7) stay cached
  EXPECT_EQ(d.Run(), "A[12,13)+ | preempt B");
  EXPECT_EQ(d.sched.Find(1)->block_table, (std::vector<BlockId>{0, 1, 4, 5}));
  EXPECT_EQ(d.FreeQueue(), (std::vector<BlockId>{3, 2}));
  EXPECT_EQ(d.sched.Find(2)->num_tokens(), 13);
  // step 9: A[13,14)+                     B would need 2 more blocks: it waits
  EXPECT_EQ(d.Run(), "A[13,14)+");
  // step 10: A[14,15)+                    A done; queue 3 2 5 4 1 0
  EXPECT_EQ(d.Run(), "A[14,15)+");
  EXPECT_EQ(d.FreeQueue(), (std::vector<BlockId>{3, 2, 5, 4, 1, 0}));
  // step 11: B*[8,13)+                    B resumes after its two cached blocks
  StepPlan p = d.Step();
  EXPECT_EQ(Describe(p), "B*[8,13)+");
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].block_table, (std::vector<BlockId>{2, 3, 5, 4}));
  EXPECT_EQ(p.seqs[0].num_touched_blocks, 2);
  EXPECT_EQ(p.seqs[0].num_new_blocks, 2);
  d.Drain();
  EXPECT_EQ(d.Output(1), TokensAt(6, 10));
  EXPECT_EQ(d.Output(2), TokensAt(6, 10));
  EXPECT_EQ(d.Done(2).num_preemptions, 1);
  EXPECT_EQ(d.sched.pool().num_free(), 6);
}

TEST(SchedulerPrefixCache, HeadOfLineRequestBlocksLaterAdmissions) {
  Driver d(PrefixConfig(4));
  ASSERT_TRUE(d.Add(WithPrompt(MakeRequest(1, 0, 1), Iota(8, 100))).ok());
  ASSERT_TRUE(d.Add(MakeRequest(2, 6, 4)).ok());
  // step 1: A*[0,8)+ B*[0,6)+             A {0,1} done (cached, free); B {2,3}
  EXPECT_EQ(d.Run(), "A*[0,8)+ B*[0,6)+");
  std::vector<int32_t> c_prompt = Iota(8, 100);
  for (int32_t t : Iota(4, 900)) c_prompt.push_back(t);
  ASSERT_TRUE(d.Add(WithPrompt(MakeRequest(3, 0, 1), c_prompt)).ok());
  ASSERT_TRUE(d.Add(MakeRequest(4, 2, 1)).ok());
  // step 2: B[6,7)+                       C's hits use both free blocks and it needs a third:
  //                                       it waits, and D (FCFS) waits behind it
  EXPECT_EQ(d.Run(), "B[6,7)+");
  EXPECT_EQ(d.sched.num_waiting(), 2);
  d.Drain();
  EXPECT_EQ(d.Output(3), TokensAt(12, 1));
  EXPECT_EQ(d.Output(4), TokensAt(2, 1));
  EXPECT_EQ(d.sched.pool().num_free(), 4);
}

// ---------------------------------------------------------------------------------------------
// Randomized stress: many requests, a small pool, random prompts / limits / stops / aborts.
// Checks every step: pool invariants, refcount == number of live sequences holding the block,
// plan sanity, no re-planned step differs; at the end every block is free and every request
// finished exactly once with a consistent reason and output.

struct StressParam {
  SchedulingPolicy policy;
  bool prefix_caching;
  uint32_t seed;
};

void PrintTo(const StressParam& p, std::ostream* os) {
  *os << (p.policy == SchedulingPolicy::kFcfs ? "fcfs" : "priority")
      << (p.prefix_caching ? " prefix-cache" : " no-prefix-cache") << " seed " << p.seed;
}

std::string StressName(const ::testing::TestParamInfo<StressParam>& info) {
  return std::string(info.param.policy == SchedulingPolicy::kFcfs ? "Fcfs" : "Priority") +
         (info.param.prefix_caching ? "Prefix" : "NoPrefix") + "Seed" +
         std::to_string(info.param.seed);
}

class SchedulerStress : public ::testing::TestWithParam<StressParam> {};

TEST_P(SchedulerStress, EveryBlockReturnsAndEveryRequestFinishesOnce) {
  const StressParam param = GetParam();
  constexpr int kStopToken = 3;
  SchedulerConfig c;
  c.max_num_batched_tokens = 32;
  c.max_num_seqs = 8;
  c.max_model_len = 80;
  c.chunk_size = param.seed % 2 == 0 ? 8 : 0;
  c.long_prefill_threshold = 16;
  c.max_long_partial_prefills = 1;
  c.max_waiting = 24;
  c.policy = param.policy;
  c.block_size = 4;
  c.num_blocks = 20;  // 80 token slots: one sequence at the context limit fills the cache
  c.enable_prefix_caching = param.prefix_caching;
  Scheduler s(c, {kEos});
  std::mt19937 rng(param.seed);
  auto uniform = [&](int lo, int hi) { return lo + static_cast<int>(rng() % (hi - lo + 1)); };

  struct Expect {
    Request request;
    std::vector<int32_t> outputs;  // tokens Update reported
    bool aborted = false;
  };
  std::map<RequestId, Expect> live;
  std::set<RequestId> added, finished;
  // Shared prefixes: prompts start with a random-length prefix of one of a few documents.
  std::vector<std::vector<int32_t>> docs;
  for (int i = 0; i < 4; ++i) docs.push_back(Iota(48, 100 * (i + 1)));

  RequestId next_id = 1;
  constexpr int kLoadSteps = 20000;
  std::map<absl::StatusCode, int> add_codes;
  std::map<FinishReason, int> reasons;
  int64_t num_steps = 0;
  for (int step = 0;; ++step) {
    const bool loading = step < kLoadSteps;
    if (!loading && !s.HasWork()) break;
    ASSERT_LT(step, kLoadSteps + 50000) << "no progress after the load stopped";
    if (loading) {
      const int arrivals = uniform(0, 4) == 0 ? uniform(1, 3) : 0;
      for (int a = 0; a < arrivals; ++a) {
        Request r;
        r.id = next_id++;
        r.arrival_ns = static_cast<int64_t>(r.id);
        r.priority = uniform(0, 3);
        const std::vector<int32_t>& doc = docs[uniform(0, 3)];
        r.prompt.assign(doc.begin(), doc.begin() + uniform(0, 40));
        const int tail = uniform(r.prompt.empty() ? 1 : 0, 12);
        for (int i = 0; i < tail; ++i) r.prompt.push_back(uniform(10, 60));
        r.sampling.max_tokens = uniform(1, 50);
        if (uniform(0, 4) == 0) r.sampling.min_tokens = uniform(0, *r.sampling.max_tokens);
        if (uniform(0, 3) == 0) r.sampling.stop_token_ids = {kStopToken};
        r.sampling.ignore_eos = uniform(0, 5) == 0;
        const int prompt = static_cast<int>(r.prompt.size());
        const int total = prompt + *r.sampling.max_tokens;
        absl::StatusCode want = absl::StatusCode::kOk;
        if (total > c.max_model_len) {
          want = absl::StatusCode::kInvalidArgument;
        } else if ((total + c.block_size - 1) / c.block_size > c.num_blocks) {
          want = absl::StatusCode::kResourceExhausted;
        } else if (s.num_waiting() >= c.max_waiting) {
          want = absl::StatusCode::kResourceExhausted;
        }
        const Status st = s.Add(r);
        ASSERT_EQ(st.code(), want) << st << " prompt " << prompt << " total " << total;
        ++add_codes[st.code()];
        if (st.ok()) {
          added.insert(r.id);
          live[r.id] = Expect{r, {}, false};
        }
      }
      if (uniform(0, 30) == 0 && !live.empty()) {
        auto it = std::next(live.begin(), uniform(0, static_cast<int>(live.size()) - 1));
        ASSERT_TRUE(s.Finish(it->first, FinishReason::kAbort));
        it->second.aborted = true;
      }
    }

    StepPlan plan = s.Schedule();
    if (uniform(0, 9) == 0) {  // a failed step: planned, never committed, planned again
      const StepPlan again = s.Schedule();
      ASSERT_TRUE(SamePlan(plan, again)) << Describe(plan) << " vs " << Describe(again);
    }
    ASSERT_LE(plan.num_tokens, c.max_num_batched_tokens);
    int sum = 0;
    std::set<RequestId> in_plan;
    for (const ScheduledSeq& ss : plan.seqs) {
      ASSERT_TRUE(in_plan.insert(ss.id).second) << "scheduled twice: " << ss.id;
      ASSERT_GE(ss.num_tokens, 1);
      const Sequence* q = s.Find(ss.id);
      ASSERT_NE(q, nullptr);
      ASSERT_EQ(ss.sample, ss.start + ss.num_tokens == q->num_tokens());
      ASSERT_LE(ss.start + ss.num_tokens, q->num_tokens());
      ASSERT_GE(static_cast<int>(ss.block_table.size()) * c.block_size, ss.start + ss.num_tokens);
      if (c.chunk_size > 0) {
        ASSERT_LE(ss.num_tokens, c.chunk_size);
      }
      if (ss.admitted) {
        ASSERT_EQ(ss.start % c.block_size, 0);
      }
      sum += ss.num_tokens;
    }
    ASSERT_EQ(sum, plan.num_tokens);
    for (RequestId id : plan.preempted) ASSERT_EQ(in_plan.count(id), 0u);

    StepResult result = Answer(plan, [&](const ScheduledSeq&) {
      const int r = uniform(0, 99);
      return r < 3 ? kEos : r < 6 ? kStopToken : uniform(10, 13);
    });
    const std::vector<SequenceOutput> outs = s.Update(plan, result);
    ++num_steps;
    ASSERT_EQ(outs.size(), plan.seqs.size());
    for (const SequenceOutput& o : outs) {
      if (o.token >= 0) live.at(o.id).outputs.push_back(o.token);
    }
    ASSERT_TRUE(s.pool().CheckInvariants()) << "step " << step;
    ASSERT_LE(s.num_running(), c.max_num_seqs);
    // Each block's refcount is the number of live sequences holding it.
    std::vector<int> holders(c.num_blocks, 0);
    for (const auto& [id, e] : live) {
      const Sequence* q = s.Find(id);
      if (q == nullptr) continue;  // finished this step
      std::set<BlockId> distinct(q->block_table.begin(), q->block_table.end());
      ASSERT_EQ(distinct.size(), q->block_table.size()) << "a block twice in one table";
      ASSERT_EQ(static_cast<int>(q->block_table.size()),
                (q->num_computed_tokens + c.block_size - 1) / c.block_size);
      for (BlockId b : q->block_table) ++holders[b];
      if (q->status == SequenceStatus::kWaiting) {
        ASSERT_TRUE(q->block_table.empty());
      }
    }
    for (BlockId b = 0; b < c.num_blocks; ++b) {
      ASSERT_EQ(s.pool().refcount(b), holders[b]) << "block " << b << " step " << step;
      if (!c.enable_prefix_caching) {
        ASSERT_LE(holders[b], 1);
      }
    }

    for (std::unique_ptr<Sequence>& q : s.TakeFinished()) {
      const RequestId id = q->id();
      ASSERT_TRUE(finished.insert(id).second) << "finished twice: " << id;
      ASSERT_EQ(live.count(id), 1u) << "unknown request finished: " << id;
      const Expect& e = live.at(id);
      ASSERT_EQ(q->status, SequenceStatus::kFinished);
      ASSERT_TRUE(q->block_table.empty());
      std::vector<int32_t> want = e.request.prompt;
      want.insert(want.end(), e.outputs.begin(), e.outputs.end());
      ASSERT_EQ(q->tokens, want) << "request " << id << " lost or duplicated tokens";
      const batching::SamplingParams& p = e.request.sampling;
      const int gen = q->num_generated();
      if (e.aborted) {
        ASSERT_EQ(q->finish_reason, FinishReason::kAbort);
      } else if (q->finish_reason == FinishReason::kLength) {
        ASSERT_EQ(gen, *p.max_tokens) << "request " << id;
      } else {
        ASSERT_EQ(q->finish_reason, FinishReason::kStop) << "request " << id;
        ASSERT_GE(gen, p.min_tokens);
        const int32_t last = q->tokens.back();
        ASSERT_TRUE((last == kEos && !p.ignore_eos) ||
                    (last == kStopToken && !p.stop_token_ids.empty()))
            << "request " << id << " stopped on " << last;
        ASSERT_EQ(q->matched_stop_token, last);
      }
      ++reasons[q->finish_reason];
      live.erase(id);
    }
  }
  EXPECT_TRUE(live.empty());
  EXPECT_EQ(finished, added);
  // The load exercised every path: all Add outcomes, all finish reasons.
  EXPECT_GT(added.size(), 2000u);
  EXPECT_GT(add_codes[absl::StatusCode::kInvalidArgument], 0);
  EXPECT_GT(add_codes[absl::StatusCode::kResourceExhausted], 0);
  for (FinishReason r : {FinishReason::kStop, FinishReason::kLength, FinishReason::kAbort}) {
    EXPECT_GT(reasons[r], 0) << batching::FinishReasonName(r);
  }
  EXPECT_EQ(s.pool().num_free(), c.num_blocks);
  EXPECT_TRUE(s.pool().CheckInvariants());
  EXPECT_GT(s.total_preemptions(), 0) << "the stress never preempted";
  if (c.enable_prefix_caching) {
    EXPECT_GT(s.pool().hit_tokens(), 0);
  }
  EXPECT_EQ(s.steps(), static_cast<uint64_t>(num_steps));
}

INSTANTIATE_TEST_SUITE_P(NoPrefixCache, SchedulerStress,
                         ::testing::Values(StressParam{SchedulingPolicy::kFcfs, false, 1},
                                           StressParam{SchedulingPolicy::kFcfs, false, 2},
                                           StressParam{SchedulingPolicy::kPriority, false, 3},
                                           StressParam{SchedulingPolicy::kPriority, false, 4}),
                         StressName);
INSTANTIATE_TEST_SUITE_P(PrefixCache, SchedulerStress,
                         ::testing::Values(StressParam{SchedulingPolicy::kFcfs, true, 5},
                                           StressParam{SchedulingPolicy::kFcfs, true, 6},
                                           StressParam{SchedulingPolicy::kPriority, true, 7},
                                           StressParam{SchedulingPolicy::kPriority, true, 8}),
                         StressName);

}  // namespace
}  // namespace moe::scheduler
