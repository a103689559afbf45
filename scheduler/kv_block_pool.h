// KvBlockPool: ownership of the paged KV cache's blocks, with reference counts and a prefix cache.
//
// Every block is either in use (refcount > 0, owned by one or more sequences: prefix-cache hits
// share blocks) or in the free queue (refcount 0). The free queue is in eviction order: blocks
// are allocated from its head and released to its tail. A full block that was computed keeps its
// hash while it sits in the free queue, so a later request with the same prefix can take it back
// (a prefix-cache hit); allocating it for something else evicts the hash. This is the design of
// vLLM's v1 KV cache manager: one queue serves as both the free list and the LRU of cached blocks.
//
// Prefix hashes chain: hash(block i) = H(hash(block i - 1), tokens of block i), so a hit on block i
// implies the whole prefix matches. Matches are also verified against the stored tokens and parent
// hash, so a 64-bit collision cannot serve a wrong block.
//
// Threads: the engine thread only.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

namespace moe::scheduler {

using BlockId = int32_t;
using BlockHash = uint64_t;

inline constexpr BlockHash kRootHash = 0x6d6f657365727665ULL;  // parent of the first block

BlockHash HashBlock(BlockHash parent, std::span<const int32_t> tokens);

// Hashes of the full blocks of `tokens` (the last partial block is not hashed).
std::vector<BlockHash> HashFullBlocks(std::span<const int32_t> tokens, int block_size);

class KvBlockPool {
 public:
  KvBlockPool(int num_blocks, int block_size, bool enable_prefix_caching);

  int num_blocks() const { return num_blocks_; }
  int block_size() const { return block_size_; }
  bool prefix_caching() const { return prefix_caching_; }
  int num_free() const { return num_free_; }  // refcount-0 blocks (cached or not)
  int num_used() const { return num_blocks_ - num_free_; }
  double usage() const { return num_blocks_ == 0 ? 0.0 : double(num_used()) / num_blocks_; }
  int refcount(BlockId b) const { return refcount_[b]; }

  // --- Read-only queries for planning.
  // Blocks holding the longest cached prefix of `hashes` (of `tokens`'s full blocks), in order.
  std::vector<BlockId> FindCachedPrefix(std::span<const BlockHash> hashes,
                                        std::span<const int32_t> tokens) const;
  // The free queue in allocation order: head, then Next(b) until -1.
  BlockId FreeHead() const { return FreeNext(Sentinel()); }
  BlockId FreeNext(BlockId b) const { return next_[b] == Sentinel() ? -1 : next_[b]; }

  // --- Mutations (the scheduler's Update and abort/finish paths).
  // A free block becomes owned (refcount 1); a cached hash it held is evicted.
  void Take(BlockId b);
  // One more owner; a free block leaves the free queue and keeps its cached hash.
  void Touch(BlockId b);
  // One owner fewer; at zero the block goes to the free-queue tail (its hash stays cached).
  void Release(BlockId b);
  // Records that `b` now holds the full block `tokens` with chain hash `hash` (parent `parent`).
  void Register(BlockId b, BlockHash parent, BlockHash hash, std::span<const int32_t> tokens);

  // Prefix-cache statistics, in tokens.
  void RecordLookup(int64_t queried_tokens, int64_t hit_tokens);
  int64_t queried_tokens() const { return queried_tokens_; }
  int64_t hit_tokens() const { return hit_tokens_; }
  double hit_rate() const {
    return queried_tokens_ == 0 ? 0.0 : double(hit_tokens_) / double(queried_tokens_);
  }

  // Checks internal consistency (free-queue links, counts, hash map); for tests.
  bool CheckInvariants() const;

 private:
  BlockId Sentinel() const { return num_blocks_; }
  void Unlink(BlockId b);
  void PushTail(BlockId b);
  bool InFreeQueue(BlockId b) const { return refcount_[b] == 0; }
  void Evict(BlockId b);

  int num_blocks_;
  int block_size_;
  bool prefix_caching_;
  int num_free_ = 0;
  std::vector<int32_t> refcount_;  // [num_blocks]
  std::vector<BlockId> prev_;      // [num_blocks + 1]; index num_blocks is the sentinel
  std::vector<BlockId> next_;      // [num_blocks + 1]
  // Prefix cache.
  std::vector<BlockHash> hash_;        // [num_blocks]; valid when has_hash_
  std::vector<BlockHash> parent_;      // [num_blocks]
  std::vector<uint8_t> has_hash_;      // [num_blocks]
  std::vector<int32_t> block_tokens_;  // [num_blocks, block_size]
  std::unordered_map<BlockHash, BlockId> cached_;
  int64_t queried_tokens_ = 0;
  int64_t hit_tokens_ = 0;
};

}  // namespace moe::scheduler
