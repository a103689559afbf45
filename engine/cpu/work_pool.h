// WorkPool: the optimized CPU backend's persistent compute threads. An op hands out numbered work
// items (expert x column block, query tile, row range); threads take them in order from one
// atomic counter, so a slow or preempted thread never holds the others up. Which thread runs an
// item never changes its result: items own disjoint outputs and compute each one the same way
// (batch and thread-count invariance, DESIGN.md §4).
//
// The caller always works on its own job. A worker joins a job only while it is open; the caller
// waits for the workers that joined, never for one that has not woken up yet (on a shared,
// oversubscribed machine a sleeping worker can take milliseconds to be scheduled). Workers spin
// briefly after each job (the ops of a decode step follow each other within microseconds) and
// then sleep on a futex, so an idle engine costs no CPU.
//
// Threading: one thread (the engine's compute thread) calls Run at a time; Run is not reentrant.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <vector>

namespace moe::engine::cpu {

class WorkPool {
 public:
  // `num_threads` counts the calling thread (>= 1).
  explicit WorkPool(int num_threads);
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Calls fn(item, thread) for every item in [0, num_items), thread in [0, num_threads), using
  // at most `max_threads` threads (0 = all). Returns when every item is done.
  template <typename Fn>
  void Run(int64_t num_items, Fn&& fn, int max_threads = 0) {
    if (num_items <= 0) return;
    using F = std::remove_reference_t<Fn>;
    Job job;
    job.fn = [](void* ctx, int64_t item, int thread) { (*static_cast<F*>(ctx))(item, thread); };
    job.ctx = const_cast<void*>(static_cast<const void*>(&fn));
    job.num_items = num_items;
    Dispatch(job, max_threads);
  }

 private:
  struct Job {
    void (*fn)(void*, int64_t, int) = nullptr;
    void* ctx = nullptr;
    int64_t num_items = 0;
    int max_thread = 0;  // threads with index <= max_thread may join
  };

  // ticket_ = (generation << 32) | workers inside the job. An odd generation is an open job.
  static constexpr uint64_t kGenerationOne = uint64_t{1} << 32;
  static uint32_t GenerationOf(uint64_t ticket) { return static_cast<uint32_t>(ticket >> 32); }
  static uint32_t InsideOf(uint64_t ticket) { return static_cast<uint32_t>(ticket); }

  void Dispatch(const Job& job, int max_threads);
  void WorkerLoop(int thread);
  void Drain(int thread);

  const int num_threads_;
  std::vector<std::thread> workers_;
  Job job_;  // written only while the generation is even (closed) and nobody is inside
  alignas(64) std::atomic<int64_t> next_item_{0};
  alignas(64) std::atomic<uint64_t> ticket_{0};
  alignas(64) std::atomic<uint32_t> wake_{0};  // futex word for sleeping workers
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace moe::engine::cpu
