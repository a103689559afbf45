// A cache from a pre-tokenized word to its BPE ids, shared by all threads that encode with one
// model. Natural text repeats words, so most words skip the merge loop. The cache is sharded by
// word hash; each shard is an open-addressing table whose words and ids live in two arenas (no
// allocation per entry). Threads only try_lock a shard: under contention a lookup is a miss and
// an insert is dropped, as in Hugging Face's cache, so encoding never waits. A shard that fills
// up is cleared. The cache only affects speed, never ids.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace moe::model {

class BpeCache {
 public:
  // Holds up to about `capacity_words` words in all.
  explicit BpeCache(size_t capacity_words);

  static uint64_t Hash(std::string_view word);

  // Appends the cached ids of `word` (whose Hash is `hash`) to `ids` and returns true, or
  // returns false.
  bool Lookup(std::string_view word, uint64_t hash, std::vector<int32_t>* ids) const;
  void Insert(std::string_view word, uint64_t hash, const int32_t* ids, size_t count);
  // Starts fetching the memory a Lookup of `hash` reads first.
  void Prefetch(uint64_t hash) const {
    const Shard& shard = shards_[hash >> (64 - kShardBits)];
    if (const Slot* slots = shard.slots_data.load(std::memory_order_relaxed)) {
      __builtin_prefetch(slots + ((hash >> 16) & (slots_per_shard_ - 1)));
    }
  }

 private:
  // Half a cache line. Words of up to kInlineBytes bytes and up to kInlineIds ids are stored in
  // the slot itself, so that a typical hit reads one cache line; longer ones go to the arenas.
  static constexpr size_t kInlineBytes = 16;
  static constexpr size_t kInlineIds = 2;
  struct Slot {
    uint32_t tag;  // low hash bits, to skip most non-matching words without comparing them
    uint16_t word_length;
    uint8_t num_ids;  // 0 = empty slot
    uint8_t unused;
    union {
      char bytes[kInlineBytes];  // word_length <= kInlineBytes, zero-padded
      uint32_t offset;           // into Shard::words otherwise
    } word;
    union {
      int32_t values[kInlineIds];  // num_ids <= kInlineIds
      uint32_t offset;             // into Shard::ids otherwise
    } ids;
  };
  struct Shard {
    mutable std::mutex mutex;
    std::vector<Slot> slots;  // power of two, at most 3/4 full; allocated on first insert
    std::atomic<const Slot*> slots_data{nullptr};  // slots.data(), readable without the lock
    std::string words;
    std::vector<int32_t> ids;
    size_t num_words = 0;
  };
  static constexpr int kShardBits = 6;

  size_t slots_per_shard_;
  size_t words_per_shard_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace moe::model
