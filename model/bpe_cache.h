// A thread-safe cache from a pre-tokenized word to its BPE ids. Natural text repeats words, so
// most words skip the merge loop. Sharded by hash so that concurrent encoders rarely contend; a
// shard that reaches its capacity is cleared (the cache only affects speed, never ids).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/synchronization/mutex.h"

namespace moe::model {

class BpeCache {
 public:
  // `capacity` words in all (0 disables the cache).
  explicit BpeCache(size_t capacity);

  // Appends the cached ids of `word` to `ids` and returns true, or returns false.
  bool Lookup(std::string_view word, std::vector<int32_t>* ids) const;
  void Insert(std::string_view word, const int32_t* ids, size_t count);

 private:
  using Ids = absl::InlinedVector<int32_t, 3>;
  struct Shard {
    mutable absl::Mutex mutex;
    absl::flat_hash_map<std::string, Ids> map;
  };
  static constexpr size_t kNumShards = 16;

  size_t ShardOf(std::string_view word) const;

  size_t shard_capacity_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace moe::model
