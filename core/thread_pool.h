// A fork-join thread pool. ParallelFor splits [0, n) into contiguous chunks with a static
// partition (the same n and thread count always give the same chunks, which keeps per-chunk work
// deterministic). The calling thread runs the first chunk; ParallelFor returns when all are done.
// One ParallelFor at a time: the pool is owned by one compute thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace moe {

class ThreadPool {
 public:
  // `num_threads` counts the calling thread: 1 means no workers (everything runs inline).
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Calls fn(begin, end, chunk_index) for chunk_index in [0, num_chunks) covering [0, n). With
  // num_chunks = 0 the pool uses one chunk per thread (fewer when n is smaller).
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                   int num_chunks = 0);

  // Number of hardware threads the process may use (at least 1).
  static int HardwareConcurrency();

 private:
  void WorkerLoop(int worker_index);
  void RunChunks(int first_chunk, int stride);

  const int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  uint64_t generation_ = 0;
  int pending_workers_ = 0;
  bool stop_ = false;

  // The job of the current generation.
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int job_chunks_ = 0;
};

}  // namespace moe
