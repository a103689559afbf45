#include "engine/cpu/work_pool.h"

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MOE_CPU_RELAX() _mm_pause()
#else
#define MOE_CPU_RELAX() ((void)0)
#endif

namespace moe::engine::cpu {
namespace {

// Pause iterations a worker spins for the next job before it sleeps (roughly 0.1-0.5 ms).
constexpr int kSpinIterations = 30000;
// Pause iterations the caller spins on joined workers before yielding its time slice.
constexpr int kCallerSpins = 2000;

}  // namespace

WorkPool::WorkPool(int num_threads) : num_threads_(std::max(1, num_threads)) {
  for (int t = 1; t < num_threads_; ++t) workers_.emplace_back([this, t] { WorkerLoop(t); });
}

WorkPool::~WorkPool() {
  stop_.store(true, std::memory_order_seq_cst);
  wake_.fetch_add(1, std::memory_order_seq_cst);
  wake_.notify_all();
  for (std::thread& w : workers_) w.join();
}

void WorkPool::Drain(int thread) {
  const Job& job = job_;
  while (true) {
    const int64_t item = next_item_.fetch_add(1, std::memory_order_relaxed);
    if (item >= job.num_items) return;
    job.fn(job.ctx, item, thread);
  }
}

void WorkPool::Dispatch(const Job& job, int max_threads) {
  int threads = max_threads > 0 ? std::min(max_threads, num_threads_) : num_threads_;
  threads = static_cast<int>(std::min<int64_t>(threads, job.num_items));
  if (threads <= 1) {
    for (int64_t i = 0; i < job.num_items; ++i) job.fn(job.ctx, i, 0);
    return;
  }
  // The generation is even (closed) and nobody is inside: job_ is ours to write.
  job_ = job;
  job_.max_thread = threads - 1;
  next_item_.store(0, std::memory_order_relaxed);
  ticket_.fetch_add(kGenerationOne, std::memory_order_seq_cst);  // open (odd)
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    wake_.fetch_add(1, std::memory_order_seq_cst);
    wake_.notify_all();
  }
  Drain(0);
  // Close the job once no joined worker is still inside. Workers that did not join by now find
  // the generation moved on and skip it.
  uint64_t ticket = ticket_.load(std::memory_order_acquire);
  int spins = 0;
  while (true) {
    if (InsideOf(ticket) == 0) {
      if (ticket_.compare_exchange_weak(ticket, ticket + kGenerationOne,
                                        std::memory_order_acq_rel)) {
        return;
      }
      continue;
    }
    if (++spins < kCallerSpins) {
      MOE_CPU_RELAX();
    } else {
      std::this_thread::yield();
    }
    ticket = ticket_.load(std::memory_order_acquire);
  }
}

void WorkPool::WorkerLoop(int thread) {
  uint32_t done_generation = 0;  // the last generation this worker has dealt with
  while (true) {
    int spins = 0;
    uint64_t ticket = ticket_.load(std::memory_order_acquire);
    // Wait for an open generation newer than the last one dealt with.
    while ((GenerationOf(ticket) & 1u) == 0 || GenerationOf(ticket) == done_generation) {
      if (stop_.load(std::memory_order_relaxed)) return;
      if (++spins < kSpinIterations) {
        MOE_CPU_RELAX();
      } else {
        const uint32_t wake = wake_.load(std::memory_order_seq_cst);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        // Re-check after announcing ourselves: a job published before the announcement is
        // seen here, one published after it bumps wake_.
        ticket = ticket_.load(std::memory_order_seq_cst);
        if (((GenerationOf(ticket) & 1u) == 0 || GenerationOf(ticket) == done_generation) &&
            !stop_.load(std::memory_order_seq_cst)) {
          wake_.wait(wake, std::memory_order_seq_cst);
        }
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
        spins = 0;
      }
      ticket = ticket_.load(std::memory_order_acquire);
    }
    const uint32_t generation = GenerationOf(ticket);
    done_generation = generation;
    // Join unless the job moved on meanwhile.
    bool joined = false;
    while (GenerationOf(ticket) == generation) {
      if (ticket_.compare_exchange_weak(ticket, ticket + 1, std::memory_order_acq_rel)) {
        joined = true;
        break;
      }
    }
    if (!joined) continue;
    if (thread <= job_.max_thread) Drain(thread);
    ticket_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace moe::engine::cpu
