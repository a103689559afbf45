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

// Spin iterations (each a pause of ~10-100 cycles) a worker waits for the next job before it
// sleeps: roughly 50-200 microseconds.
constexpr int kSpinIterations = 20000;

}  // namespace

WorkPool::WorkPool(int num_threads) : num_threads_(std::max(1, num_threads)) {
  for (int t = 1; t < num_threads_; ++t) workers_.emplace_back([this, t] { WorkerLoop(t); });
}

WorkPool::~WorkPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (std::thread& w : workers_) w.join();
}

void WorkPool::Drain(int thread) {
  const Job job = job_;
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
  job_ = job;
  job_threads_ = threads;
  next_item_.store(0, std::memory_order_relaxed);
  busy_workers_.store(num_threads_ - 1, std::memory_order_relaxed);
  // seq_cst publish; pairs with the sleepers_ check in WorkerLoop (no lost wake-up).
  generation_.fetch_add(1, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) generation_.notify_all();
  Drain(0);
  int spins = 0;
  while (busy_workers_.load(std::memory_order_acquire) != 0) {
    MOE_CPU_RELAX();
    if (++spins > kSpinIterations) std::this_thread::yield();
  }
}

void WorkPool::WorkerLoop(int thread) {
  // Workers start before the first job, so generation 0 has been seen.
  uint32_t seen = 0;
  while (true) {
    int spins = 0;
    uint32_t now = generation_.load(std::memory_order_acquire);
    while (now == seen) {
      if (++spins < kSpinIterations) {
        MOE_CPU_RELAX();
      } else {
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        generation_.wait(seen, std::memory_order_seq_cst);
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
        spins = 0;
      }
      now = generation_.load(std::memory_order_acquire);
    }
    seen = now;
    if (stop_.load()) return;
    if (thread < job_threads_) Drain(thread);
    busy_workers_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace moe::engine::cpu
