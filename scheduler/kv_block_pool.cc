#include "scheduler/kv_block_pool.h"

#include <algorithm>

#include "core/check.h"
#include "core/hash.h"

namespace moe::scheduler {

BlockHash HashBlock(BlockHash parent, std::span<const int32_t> tokens) {
  uint64_t h = Mix64(parent ^ 0x9e3779b97f4a7c15ULL);
  for (int32_t t : tokens) {
    h = Mix64(h ^ (static_cast<uint64_t>(static_cast<uint32_t>(t)) + 0x632be59bd9b4e019ULL));
  }
  return Mix64(h + tokens.size());
}

std::vector<BlockHash> HashFullBlocks(std::span<const int32_t> tokens, int block_size) {
  std::vector<BlockHash> hashes;
  const size_t full = tokens.size() / block_size;
  hashes.reserve(full);
  BlockHash parent = kRootHash;
  for (size_t i = 0; i < full; ++i) {
    parent = HashBlock(parent, tokens.subspan(i * block_size, block_size));
    hashes.push_back(parent);
  }
  return hashes;
}

KvBlockPool::KvBlockPool(int num_blocks, int block_size, bool enable_prefix_caching)
    : num_blocks_(num_blocks),
      block_size_(block_size),
      prefix_caching_(enable_prefix_caching),
      refcount_(num_blocks, 0),
      prev_(num_blocks + 1),
      next_(num_blocks + 1),
      hash_(num_blocks, 0),
      parent_(num_blocks, 0),
      has_hash_(num_blocks, 0) {
  MOE_CHECK_GT(num_blocks, 0);
  MOE_CHECK_GT(block_size, 0);
  if (prefix_caching_) block_tokens_.resize(static_cast<size_t>(num_blocks) * block_size);
  prev_[Sentinel()] = next_[Sentinel()] = Sentinel();
  for (BlockId b = 0; b < num_blocks; ++b) PushTail(b);
  num_free_ = num_blocks;
}

void KvBlockPool::Unlink(BlockId b) {
  next_[prev_[b]] = next_[b];
  prev_[next_[b]] = prev_[b];
}

void KvBlockPool::PushTail(BlockId b) {
  const BlockId last = prev_[Sentinel()];
  next_[last] = b;
  prev_[b] = last;
  next_[b] = Sentinel();
  prev_[Sentinel()] = b;
}

void KvBlockPool::Evict(BlockId b) {
  if (!has_hash_[b]) return;
  auto it = cached_.find(hash_[b]);
  if (it != cached_.end() && it->second == b) cached_.erase(it);
  has_hash_[b] = 0;
}

std::vector<BlockId> KvBlockPool::FindCachedPrefix(std::span<const BlockHash> hashes,
                                                   std::span<const int32_t> tokens) const {
  std::vector<BlockId> blocks;
  if (!prefix_caching_) return blocks;
  BlockHash parent = kRootHash;
  for (size_t i = 0; i < hashes.size(); ++i) {
    auto it = cached_.find(hashes[i]);
    if (it == cached_.end()) break;
    const BlockId b = it->second;
    const int32_t* stored = block_tokens_.data() + static_cast<size_t>(b) * block_size_;
    if (parent_[b] != parent ||
        !std::equal(stored, stored + block_size_, tokens.begin() + i * block_size_)) {
      break;
    }
    blocks.push_back(b);
    parent = hashes[i];
  }
  return blocks;
}

void KvBlockPool::Take(BlockId b) {
  MOE_CHECK_EQ(refcount_[b], 0) << "Take of block " << b << " in use";
  Unlink(b);
  Evict(b);
  refcount_[b] = 1;
  --num_free_;
}

void KvBlockPool::Touch(BlockId b) {
  if (refcount_[b] == 0) {
    Unlink(b);
    --num_free_;
  }
  ++refcount_[b];
}

void KvBlockPool::Release(BlockId b) {
  MOE_CHECK_GT(refcount_[b], 0) << "Release of free block " << b;
  if (--refcount_[b] == 0) {
    PushTail(b);
    ++num_free_;
  }
}

void KvBlockPool::Register(BlockId b, BlockHash parent, BlockHash hash,
                           std::span<const int32_t> tokens) {
  if (!prefix_caching_ || has_hash_[b]) return;
  MOE_CHECK_EQ(static_cast<int>(tokens.size()), block_size_);
  // Another block may already hold the same content (two requests computed it concurrently);
  // the first one stays the cached copy.
  if (cached_.count(hash) != 0) return;
  cached_.emplace(hash, b);
  hash_[b] = hash;
  parent_[b] = parent;
  has_hash_[b] = 1;
  std::copy(tokens.begin(), tokens.end(),
            block_tokens_.begin() + static_cast<size_t>(b) * block_size_);
}

void KvBlockPool::RecordLookup(int64_t queried_tokens, int64_t hit_tokens) {
  queried_tokens_ += queried_tokens;
  hit_tokens_ += hit_tokens;
}

bool KvBlockPool::CheckInvariants() const {
  int free_count = 0;
  BlockId prev = Sentinel();
  for (BlockId b = next_[Sentinel()]; b != Sentinel(); b = next_[b]) {
    if (b < 0 || b >= num_blocks_ || prev_[b] != prev || refcount_[b] != 0) return false;
    prev = b;
    if (++free_count > num_blocks_) return false;
  }
  if (free_count != num_free_) return false;
  int zero = 0;
  for (BlockId b = 0; b < num_blocks_; ++b) {
    if (refcount_[b] < 0) return false;
    if (refcount_[b] == 0) ++zero;
  }
  if (zero != num_free_) return false;
  for (const auto& [hash, b] : cached_) {
    if (!has_hash_[b] || hash_[b] != hash) return false;
  }
  return true;
}

}  // namespace moe::scheduler
