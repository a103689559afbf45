#include "model/bpe_cache.h"

#include "absl/hash/hash.h"

namespace moe::model {

BpeCache::BpeCache(size_t capacity)
    : shard_capacity_(capacity / kNumShards), shards_(new Shard[kNumShards]) {}

size_t BpeCache::ShardOf(std::string_view word) const {
  // The top bits, so that the shard choice is independent of the map's own bucket bits.
  return absl::Hash<absl::string_view>()(absl::string_view(word.data(), word.size())) >> 60;
}

bool BpeCache::Lookup(std::string_view word, std::vector<int32_t>* ids) const {
  if (shard_capacity_ == 0) return false;
  const Shard& shard = shards_[ShardOf(word)];
  absl::MutexLock lock(&shard.mutex);
  auto it = shard.map.find(absl::string_view(word.data(), word.size()));
  if (it == shard.map.end()) return false;
  ids->insert(ids->end(), it->second.begin(), it->second.end());
  return true;
}

void BpeCache::Insert(std::string_view word, const int32_t* ids, size_t count) {
  if (shard_capacity_ == 0) return;
  Shard& shard = shards_[ShardOf(word)];
  absl::MutexLock lock(&shard.mutex);
  if (shard.map.size() >= shard_capacity_) shard.map.clear();
  shard.map.try_emplace(std::string(word), ids, ids + count);
}

}  // namespace moe::model
