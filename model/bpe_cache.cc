#include "model/bpe_cache.h"

#include <cstring>

namespace moe::model {
namespace {

inline uint64_t Mix(uint64_t x) {
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ULL;
  x ^= x >> 32;
  return x;
}

}  // namespace

BpeCache::BpeCache(size_t capacity_words) : shards_(new Shard[size_t{1} << kShardBits]) {
  const size_t words = capacity_words >> kShardBits;
  slots_per_shard_ = 16;
  while (slots_per_shard_ * 3 < words * 4) slots_per_shard_ *= 2;
  words_per_shard_ = words;
}

uint64_t BpeCache::Hash(std::string_view word) {
  const char* p = word.data();
  const size_t n = word.size();
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ (n * 0xbf58476d1ce4e5b9ULL);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    h = Mix(h ^ v);
  }
  uint64_t tail = 0;
  std::memcpy(&tail, p + i, n - i);
  return Mix(h ^ tail);
}

bool BpeCache::Lookup(std::string_view word, uint64_t hash, std::vector<int32_t>* ids) const {
  if (words_per_shard_ == 0) return false;
  const Shard& shard = shards_[hash >> (64 - kShardBits)];
  std::unique_lock<std::mutex> lock(shard.mutex, std::try_to_lock);
  if (!lock.owns_lock() || shard.slots.empty()) return false;
  const bool inline_word = word.size() <= kInlineBytes;
  char padded[kInlineBytes] = {};
  if (inline_word) std::memcpy(padded, word.data(), word.size());
  const size_t mask = shard.slots.size() - 1;
  const uint32_t tag = static_cast<uint32_t>(hash);
  for (size_t i = (hash >> 16) & mask;; i = (i + 1) & mask) {
    const Slot& s = shard.slots[i];
    if (s.num_ids == 0) return false;
    if (s.tag != tag || s.word_length != word.size()) continue;
    const bool same = inline_word ? std::memcmp(s.word.bytes, padded, kInlineBytes) == 0
                                  : std::memcmp(shard.words.data() + s.word.offset, word.data(),
                                                word.size()) == 0;
    if (!same) continue;
    const int32_t* first = s.num_ids <= kInlineIds ? s.ids.values : shard.ids.data() + s.ids.offset;
    ids->insert(ids->end(), first, first + s.num_ids);
    return true;
  }
}

void BpeCache::Insert(std::string_view word, uint64_t hash, const int32_t* ids, size_t count) {
  if (words_per_shard_ == 0 || count == 0 || count > UINT8_MAX || word.size() > UINT16_MAX) {
    return;
  }
  Shard& shard = shards_[hash >> (64 - kShardBits)];
  std::unique_lock<std::mutex> lock(shard.mutex, std::try_to_lock);
  if (!lock.owns_lock()) return;
  if (shard.slots.empty() || shard.num_words >= words_per_shard_ ||
      shard.words.size() + word.size() > UINT32_MAX || shard.ids.size() + count > UINT32_MAX) {
    shard.slots.assign(slots_per_shard_, Slot{});
    shard.slots_data.store(shard.slots.data(), std::memory_order_relaxed);
    shard.words.clear();
    shard.ids.clear();
    shard.num_words = 0;
  }
  const size_t mask = shard.slots.size() - 1;
  size_t i = (hash >> 16) & mask;
  while (shard.slots[i].num_ids != 0) i = (i + 1) & mask;
  Slot& s = shard.slots[i];
  s = Slot{};
  s.tag = static_cast<uint32_t>(hash);
  s.word_length = static_cast<uint16_t>(word.size());
  s.num_ids = static_cast<uint8_t>(count);
  if (word.size() <= kInlineBytes) {
    std::memcpy(s.word.bytes, word.data(), word.size());
  } else {
    s.word.offset = static_cast<uint32_t>(shard.words.size());
    shard.words.append(word);
  }
  if (count <= kInlineIds) {
    std::memcpy(s.ids.values, ids, count * sizeof(int32_t));
  } else {
    s.ids.offset = static_cast<uint32_t>(shard.ids.size());
    shard.ids.insert(shard.ids.end(), ids, ids + count);
  }
  ++shard.num_words;
}

}  // namespace moe::model
