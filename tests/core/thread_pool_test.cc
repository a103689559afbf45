#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>
#include <vector>

namespace moe {
namespace {

struct ChunkCall {
  int64_t begin;
  int64_t end;
  int chunk;
  bool operator<(const ChunkCall& o) const {
    return std::tie(chunk, begin, end) < std::tie(o.chunk, o.begin, o.end);
  }
  bool operator==(const ChunkCall& o) const {
    return std::tie(chunk, begin, end) == std::tie(o.chunk, o.begin, o.end);
  }
};

// Runs one ParallelFor recording every call and how often each index was visited.
std::vector<ChunkCall> RecordCalls(ThreadPool& pool, int64_t n, int num_chunks,
                                   std::vector<int>* visits) {
  std::mutex mu;
  std::vector<ChunkCall> calls;
  visits->assign(static_cast<size_t>(std::max<int64_t>(n, 0)), 0);
  std::vector<std::atomic<int>> counts(visits->size());
  pool.ParallelFor(
      n,
      [&](int64_t begin, int64_t end, int chunk) {
        for (int64_t i = begin; i < end; ++i) counts[i].fetch_add(1, std::memory_order_relaxed);
        std::lock_guard<std::mutex> lock(mu);
        calls.push_back({begin, end, chunk});
      },
      num_chunks);
  for (size_t i = 0; i < counts.size(); ++i) (*visits)[i] = counts[i].load();
  std::sort(calls.begin(), calls.end());
  return calls;
}

TEST(ThreadPoolTest, NumThreadsCountsCaller) {
  EXPECT_EQ(ThreadPool(1).num_threads(), 1);
  EXPECT_EQ(ThreadPool(3).num_threads(), 3);
  EXPECT_EQ(ThreadPool(0).num_threads(), 1);
  EXPECT_EQ(ThreadPool(-5).num_threads(), 1);
  EXPECT_GE(ThreadPool::HardwareConcurrency(), 1);
}

TEST(ThreadPoolTest, CoversRangeExactlyOnceWithStaticPartition) {
  const int64_t ns[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 31, 100, 1000, 1001, 4099};
  const int threads[] = {1, 2, 3, 4, 8};
  const int chunk_counts[] = {0, 1, 2, 3, 5, 7, 8, 64, 2000};
  for (int t : threads) {
    ThreadPool pool(t);
    for (int64_t n : ns) {
      for (int num_chunks : chunk_counts) {
        SCOPED_TRACE(::testing::Message()
                     << "threads=" << t << " n=" << n << " num_chunks=" << num_chunks);
        std::vector<int> visits;
        const std::vector<ChunkCall> calls = RecordCalls(pool, n, num_chunks, &visits);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(visits[i], 1) << "index " << i;
        if (n == 0) {
          EXPECT_TRUE(calls.empty());
          continue;
        }
        // The effective chunk count: requested (or one per thread), never more than n.
        const int64_t chunks = std::min<int64_t>(num_chunks > 0 ? num_chunks : t, n);
        ASSERT_EQ(static_cast<int64_t>(calls.size()), chunks);
        for (int64_t c = 0; c < chunks; ++c) {
          const ChunkCall& call = calls[c];
          EXPECT_EQ(call.chunk, c);
          EXPECT_EQ(call.begin, n * c / chunks);
          EXPECT_EQ(call.end, n * (c + 1) / chunks);
          EXPECT_LT(call.begin, call.end);  // no empty chunks are handed out
        }
      }
    }
  }
}

TEST(ThreadPoolTest, PartitionIsDeterministic) {
  ThreadPool pool(4);
  std::vector<int> visits;
  for (int64_t n : {10, 97, 12345}) {
    for (int chunks : {0, 3, 16}) {
      const std::vector<ChunkCall> first = RecordCalls(pool, n, chunks, &visits);
      for (int rep = 0; rep < 5; ++rep) {
        EXPECT_EQ(RecordCalls(pool, n, chunks, &visits), first);
      }
      // The same chunks on a differently sized pool when num_chunks is explicit.
      if (chunks > 0) {
        ThreadPool other(2);
        EXPECT_EQ(RecordCalls(other, n, chunks, &visits), first);
      }
    }
  }
}

TEST(ThreadPoolTest, ExactPartitionExamples) {
  ThreadPool pool(3);
  std::vector<int> visits;
  EXPECT_EQ(RecordCalls(pool, 10, 0, &visits),
            (std::vector<ChunkCall>{{0, 3, 0}, {3, 6, 1}, {6, 10, 2}}));
  EXPECT_EQ(RecordCalls(pool, 10, 4, &visits),
            (std::vector<ChunkCall>{{0, 2, 0}, {2, 5, 1}, {5, 7, 2}, {7, 10, 3}}));
  EXPECT_EQ(RecordCalls(pool, 2, 0, &visits), (std::vector<ChunkCall>{{0, 1, 0}, {1, 2, 1}}));
  EXPECT_EQ(RecordCalls(pool, 3, 100, &visits),
            (std::vector<ChunkCall>{{0, 1, 0}, {1, 2, 1}, {2, 3, 2}}));
}

TEST(ThreadPoolTest, NegativeOrZeroNCallsNothing) {
  ThreadPool pool(4);
  int calls = 0;
  pool.ParallelFor(0, [&](int64_t, int64_t, int) { ++calls; });
  pool.ParallelFor(
      -3, [&](int64_t, int64_t, int) { ++calls; }, 5);
  EXPECT_EQ(calls, 0);
}

TEST(ThreadPoolTest, SingleThreadPoolRunsInlineOnCaller) {
  ThreadPool pool(1);
  const std::thread::id caller = std::this_thread::get_id();
  std::vector<int> chunks_seen;
  pool.ParallelFor(
      100,
      [&](int64_t, int64_t, int c) {
        EXPECT_EQ(std::this_thread::get_id(), caller);
        chunks_seen.push_back(c);  // unsynchronised on purpose: all on one thread, in order
      },
      7);
  EXPECT_EQ(chunks_seen, (std::vector<int>{0, 1, 2, 3, 4, 5, 6}));
}

TEST(ThreadPoolTest, OneChunkRunsInlineOnCaller) {
  ThreadPool pool(4);
  const std::thread::id caller = std::this_thread::get_id();
  int calls = 0;
  pool.ParallelFor(
      1000,
      [&](int64_t b, int64_t e, int c) {
        EXPECT_EQ(std::this_thread::get_id(), caller);
        EXPECT_EQ(b, 0);
        EXPECT_EQ(e, 1000);
        EXPECT_EQ(c, 0);
        ++calls;
      },
      1);
  pool.ParallelFor(1, [&](int64_t, int64_t, int) {
    EXPECT_EQ(std::this_thread::get_id(), caller);
    ++calls;
  });
  EXPECT_EQ(calls, 2);
}

TEST(ThreadPoolTest, CallerRunsFirstChunk) {
  ThreadPool pool(4);
  const std::thread::id caller = std::this_thread::get_id();
  for (int rep = 0; rep < 50; ++rep) {
    std::atomic<bool> chunk0_on_caller{false};
    pool.ParallelFor(64, [&](int64_t, int64_t, int c) {
      if (c == 0) chunk0_on_caller = std::this_thread::get_id() == caller;
    });
    ASSERT_TRUE(chunk0_on_caller) << "rep " << rep;
  }
}

TEST(ThreadPoolTest, ChunksRunConcurrently) {
  // Every chunk waits until all four have started: only possible if four threads run them.
  ThreadPool pool(4);
  std::atomic<int> arrived{0};
  std::atomic<bool> timed_out{false};
  std::mutex mu;
  std::set<std::thread::id> ids;
  pool.ParallelFor(
      4,
      [&](int64_t, int64_t, int) {
        {
          std::lock_guard<std::mutex> lock(mu);
          ids.insert(std::this_thread::get_id());
        }
        arrived.fetch_add(1);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (arrived.load() < 4) {
          if (std::chrono::steady_clock::now() > deadline) {
            timed_out = true;
            return;
          }
          std::this_thread::yield();
        }
      },
      4);
  EXPECT_FALSE(timed_out);
  EXPECT_EQ(ids.size(), 4u);
}

TEST(ThreadPoolTest, ReusableForThousandsOfCalls) {
  ThreadPool pool(4);
  int64_t expected = 0;
  std::atomic<int64_t> total{0};
  for (int call = 0; call < 5000; ++call) {
    const int64_t n = 1 + call % 37;
    const int chunks = call % 6;  // includes 0 (= one per thread) and 1 (inline)
    pool.ParallelFor(
        n,
        [&](int64_t b, int64_t e, int) {
          int64_t local = 0;
          for (int64_t i = b; i < e; ++i) local += i + 1;
          total.fetch_add(local, std::memory_order_relaxed);
        },
        chunks);
    expected += n * (n + 1) / 2;
    // ParallelFor returns only after all chunks are done: the sum is complete right now.
    ASSERT_EQ(total.load(), expected) << "call " << call;
  }
}

TEST(ThreadPoolTest, ResultsVisibleAfterReturnWithoutAtomics) {
  ThreadPool pool(3);
  std::vector<int64_t> out(10000);
  for (int rep = 0; rep < 20; ++rep) {
    pool.ParallelFor(static_cast<int64_t>(out.size()), [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) out[i] = i * rep;
    });
    for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], static_cast<int64_t>(i) * rep);
  }
}

TEST(ThreadPoolTest, DestructionWhileIdleIsClean) {
  for (int i = 0; i < 200; ++i) {
    ThreadPool pool(1 + i % 8);  // never used
  }
  for (int i = 0; i < 50; ++i) {
    ThreadPool pool(4);
    std::atomic<int> sum{0};
    pool.ParallelFor(100, [&](int64_t b, int64_t e, int) { sum += static_cast<int>(e - b); });
    EXPECT_EQ(sum.load(), 100);
  }  // destroyed right after a job, workers idle
  SUCCEED();
}

TEST(ThreadPoolDeathTest, NestedParallelForFromWorkerAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        ThreadPool pool(2);
        pool.ParallelFor(
            2,
            [&](int64_t, int64_t, int c) {
              // Chunk 1 runs on the worker, which has not reported back yet: the pool is busy.
              if (c == 1)
                pool.ParallelFor(
                    8, [](int64_t, int64_t, int) {}, 2);
            },
            2);
      },
      "not reentrant");
}

}  // namespace
}  // namespace moe
