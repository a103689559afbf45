#include "core/thread_pool.h"

#include <algorithm>

#include "core/check.h"

namespace moe {

ThreadPool::ThreadPool(int num_threads) : num_threads_(std::max(1, num_threads)) {
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

int ThreadPool::HardwareConcurrency() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

void ThreadPool::RunChunks(int first_chunk, int stride) {
  for (int c = first_chunk; c < job_chunks_; c += stride) {
    const int64_t begin = job_n_ * c / job_chunks_;
    const int64_t end = job_n_ * (c + 1) / job_chunks_;
    if (begin < end) (*job_)(begin, end, c);
  }
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                             int num_chunks) {
  if (n <= 0) return;
  int chunks = num_chunks > 0 ? num_chunks : num_threads_;
  chunks = static_cast<int>(std::min<int64_t>(chunks, n));
  if (num_threads_ == 1 || chunks == 1) {
    for (int c = 0; c < chunks; ++c) {
      const int64_t begin = n * c / chunks;
      const int64_t end = n * (c + 1) / chunks;
      if (begin < end) fn(begin, end, c);
    }
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    MOE_CHECK(pending_workers_ == 0) << "ParallelFor is not reentrant";
    job_ = &fn;
    job_n_ = n;
    job_chunks_ = chunks;
    pending_workers_ = num_threads_ - 1;
    ++generation_;
  }
  start_cv_.notify_all();
  RunChunks(0, num_threads_);
  std::unique_lock<std::mutex> lock(mutex_);
  done_cv_.wait(lock, [this] { return pending_workers_ == 0; });
  job_ = nullptr;
}

void ThreadPool::WorkerLoop(int worker_index) {
  uint64_t seen = 0;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    RunChunks(worker_index, num_threads_);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_workers_ == 0) done_cv_.notify_one();
    }
  }
}

}  // namespace moe
