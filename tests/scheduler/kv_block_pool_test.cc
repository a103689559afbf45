// KvBlockPool: reference counts, the free queue (allocation order = eviction order), and the
// prefix cache (hash chain of full blocks, verified against the stored tokens and parent hash).
// The last test drives random operation sequences against a small reference model.
#include "scheduler/kv_block_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <list>
#include <map>
#include <random>
#include <vector>

namespace moe::scheduler {
namespace {

std::vector<BlockId> FreeQueue(const KvBlockPool& pool) {
  std::vector<BlockId> order;
  for (BlockId b = pool.FreeHead(); b >= 0; b = pool.FreeNext(b)) {
    order.push_back(b);
    if (order.size() > static_cast<size_t>(pool.num_blocks())) break;  // a cycle: fail below
  }
  return order;
}

std::vector<int32_t> Iota(int n, int32_t first) {
  std::vector<int32_t> v(n);
  for (int i = 0; i < n; ++i) v[i] = first + i;
  return v;
}

std::span<const int32_t> Block(const std::vector<int32_t>& tokens, int j, int bs) {
  return std::span<const int32_t>(tokens).subspan(static_cast<size_t>(j) * bs, bs);
}

// Registers the full blocks of `tokens` into `blocks` (already owned), as the scheduler does.
void RegisterChain(KvBlockPool& pool, const std::vector<BlockId>& blocks,
                   const std::vector<int32_t>& tokens) {
  const std::vector<BlockHash> hashes = HashFullBlocks(tokens, pool.block_size());
  ASSERT_LE(blocks.size(), hashes.size());
  for (size_t j = 0; j < blocks.size(); ++j) {
    pool.Register(blocks[j], j == 0 ? kRootHash : hashes[j - 1], hashes[j],
                  Block(tokens, static_cast<int>(j), pool.block_size()));
  }
}

std::vector<BlockId> Find(const KvBlockPool& pool, const std::vector<int32_t>& tokens) {
  const std::vector<BlockHash> hashes = HashFullBlocks(tokens, pool.block_size());
  return pool.FindCachedPrefix(hashes, tokens);
}

// ---------------------------------------------------------------------------------------------
// Hashing

TEST(HashFullBlocks, HashesOnlyFullBlocksAsAChain) {
  const std::vector<int32_t> tokens = Iota(11, 100);  // 2 full blocks of 4 + 3 tokens
  const std::vector<BlockHash> h = HashFullBlocks(tokens, 4);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0], HashBlock(kRootHash, Block(tokens, 0, 4)));
  EXPECT_EQ(h[1], HashBlock(h[0], Block(tokens, 1, 4)));
  EXPECT_TRUE(HashFullBlocks(Iota(3, 0), 4).empty());
}

TEST(HashFullBlocks, SecondBlockHashDependsOnTheFirstBlock) {
  std::vector<int32_t> a = Iota(8, 0), b = Iota(8, 0);
  b[0] = 99;  // same second block, different first block
  EXPECT_NE(HashFullBlocks(a, 4)[1], HashFullBlocks(b, 4)[1]);
  // Same tokens, same hashes.
  EXPECT_EQ(HashFullBlocks(a, 4), HashFullBlocks(Iota(8, 0), 4));
}

// ---------------------------------------------------------------------------------------------
// Reference counts and the free queue

TEST(KvBlockPool, FreshPoolHasEveryBlockFreeInIdOrder) {
  KvBlockPool pool(5, 4, true);
  EXPECT_EQ(pool.num_blocks(), 5);
  EXPECT_EQ(pool.block_size(), 4);
  EXPECT_EQ(pool.num_free(), 5);
  EXPECT_EQ(pool.num_used(), 0);
  EXPECT_DOUBLE_EQ(pool.usage(), 0.0);
  EXPECT_EQ(FreeQueue(pool), (std::vector<BlockId>{0, 1, 2, 3, 4}));
  for (BlockId b = 0; b < 5; ++b) EXPECT_EQ(pool.refcount(b), 0);
  EXPECT_TRUE(pool.CheckInvariants());
}

TEST(KvBlockPool, TakeRemovesTheBlockFromTheFreeQueue) {
  KvBlockPool pool(5, 4, true);
  pool.Take(2);
  EXPECT_EQ(pool.refcount(2), 1);
  EXPECT_EQ(pool.num_free(), 4);
  EXPECT_EQ(pool.num_used(), 1);
  EXPECT_DOUBLE_EQ(pool.usage(), 0.2);
  EXPECT_EQ(FreeQueue(pool), (std::vector<BlockId>{0, 1, 3, 4}));
  pool.Take(0);
  EXPECT_EQ(FreeQueue(pool), (std::vector<BlockId>{1, 3, 4}));
  EXPECT_EQ(pool.FreeHead(), 1);
  EXPECT_TRUE(pool.CheckInvariants());
}

TEST(KvBlockPool, ReleaseToZeroAppendsToTheTail) {
  KvBlockPool pool(5, 4, true);
  pool.Take(0);
  pool.Take(1);
  pool.Take(2);
  // Released in the order 2, 0, 1: they queue behind the never-used blocks in that order.
  pool.Release(2);
  pool.Release(0);
  pool.Release(1);
  EXPECT_EQ(FreeQueue(pool), (std::vector<BlockId>{3, 4, 2, 0, 1}));
  EXPECT_EQ(pool.num_free(), 5);
  EXPECT_TRUE(pool.CheckInvariants());
}

TEST(KvBlockPool, TouchAddsOwnersAndReleaseFreesOnlyAtZero) {
  KvBlockPool pool(4, 4, true);
  pool.Take(1);
  pool.Touch(1);
  pool.Touch(1);
  EXPECT_EQ(pool.refcount(1), 3);
  EXPECT_EQ(pool.num_free(), 3);
  pool.Release(1);
  pool.Release(1);
  EXPECT_EQ(pool.refcount(1), 1);
  EXPECT_EQ(FreeQueue(pool), (std::vector<BlockId>{0, 2, 3}));
  pool.Release(1);
  EXPECT_EQ(pool.refcount(1), 0);
  EXPECT_EQ(FreeQueue(pool), (std::vector<BlockId>{0, 2, 3, 1}));
  EXPECT_TRUE(pool.CheckInvariants());
}

TEST(KvBlockPool, TouchOfAFreeBlockTakesItOutOfTheQueue) {
  KvBlockPool pool(4, 4, true);
  pool.Touch(2);
  EXPECT_EQ(pool.refcount(2), 1);
  EXPECT_EQ(pool.num_free(), 3);
  EXPECT_EQ(FreeQueue(pool), (std::vector<BlockId>{0, 1, 3}));
  EXPECT_TRUE(pool.CheckInvariants());
}

TEST(KvBlockPoolDeathTest, TakeOfAnOwnedBlockAndReleaseOfAFreeBlockAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  KvBlockPool pool(4, 4, true);
  pool.Take(1);
  EXPECT_DEATH(pool.Take(1), "in use");
  EXPECT_DEATH(pool.Release(0), "free block");
}

// ---------------------------------------------------------------------------------------------
// Prefix cache

TEST(KvBlockPool, RegisteredChainIsFoundWhileOwnedAndAfterRelease) {
  KvBlockPool pool(8, 4, true);
  const std::vector<int32_t> tokens = Iota(14, 100);  // 3 full blocks + 2 tokens
  for (BlockId b : {5, 2, 6}) pool.Take(b);
  RegisterChain(pool, {5, 2, 6}, tokens);
  EXPECT_EQ(Find(pool, tokens), (std::vector<BlockId>{5, 2, 6}));
  // Cached blocks stay findable in the free queue (released tail first, as the scheduler does).
  pool.Release(6);
  pool.Release(2);
  pool.Release(5);
  EXPECT_EQ(pool.num_free(), 8);
  EXPECT_EQ(Find(pool, tokens), (std::vector<BlockId>{5, 2, 6}));
  EXPECT_EQ(FreeQueue(pool), (std::vector<BlockId>{0, 1, 3, 4, 7, 6, 2, 5}));
  EXPECT_TRUE(pool.CheckInvariants());
}

TEST(KvBlockPool, PartialHitsStopAtTheFirstDifferentBlock) {
  KvBlockPool pool(8, 4, true);
  const std::vector<int32_t> tokens = Iota(12, 100);
  for (BlockId b : {0, 1, 2}) pool.Take(b);
  RegisterChain(pool, {0, 1, 2}, tokens);

  std::vector<int32_t> third_differs = tokens;
  third_differs[9] = 7;
  EXPECT_EQ(Find(pool, third_differs), (std::vector<BlockId>{0, 1}));

  std::vector<int32_t> first_differs = tokens;
  first_differs[0] = 7;  // every later hash changes too
  EXPECT_TRUE(Find(pool, first_differs).empty());

  // A longer query: hits for the cached blocks only.
  std::vector<int32_t> longer = tokens;
  for (int i = 0; i < 9; ++i) longer.push_back(500 + i);
  EXPECT_EQ(Find(pool, longer), (std::vector<BlockId>{0, 1, 2}));

  // A shorter query (only its first block is full).
  EXPECT_EQ(Find(pool, std::vector<int32_t>(tokens.begin(), tokens.begin() + 7)),
            (std::vector<BlockId>{0}));
  EXPECT_TRUE(Find(pool, std::vector<int32_t>(tokens.begin(), tokens.begin() + 3)).empty());
}

TEST(KvBlockPool, TokenVerificationRejectsACollidingHash) {
  KvBlockPool pool(4, 4, true);
  const std::vector<int32_t> real = Iota(8, 100);
  const std::vector<BlockHash> h = HashFullBlocks(real, 4);
  // Block 0 holds other tokens but claims the hash of real's first block (a collision).
  pool.Take(0);
  const std::vector<int32_t> other = {1, 2, 3, 4};
  pool.Register(0, kRootHash, h[0], other);
  EXPECT_TRUE(pool.FindCachedPrefix(h, real).empty());
  EXPECT_TRUE(pool.CheckInvariants());
}

TEST(KvBlockPool, ParentVerificationRejectsABlockFromAnotherChain) {
  KvBlockPool pool(4, 4, true);
  const std::vector<int32_t> real = Iota(8, 100);
  const std::vector<BlockHash> h = HashFullBlocks(real, 4);
  pool.Take(0);
  pool.Take(1);
  pool.Register(0, kRootHash, h[0], Block(real, 0, 4));
  // Block 1 has the right tokens and hash but a different parent.
  pool.Register(1, h[0] ^ 1, h[1], Block(real, 1, 4));
  EXPECT_EQ(pool.FindCachedPrefix(h, real), (std::vector<BlockId>{0}));
}

TEST(KvBlockPool, TakeEvictsTheCachedHash) {
  KvBlockPool pool(4, 4, true);
  const std::vector<int32_t> tokens = Iota(8, 100);
  pool.Take(0);
  pool.Take(1);
  RegisterChain(pool, {0, 1}, tokens);
  pool.Release(1);
  pool.Release(0);
  EXPECT_EQ(FreeQueue(pool), (std::vector<BlockId>{2, 3, 1, 0}));
  // Reusing block 1 (the second block of the chain) for something else evicts its hash only.
  pool.Take(1);
  EXPECT_EQ(Find(pool, tokens), (std::vector<BlockId>{0}));
  // Reusing block 0 breaks the chain at its start.
  pool.Take(0);
  EXPECT_TRUE(Find(pool, tokens).empty());
  EXPECT_TRUE(pool.CheckInvariants());
  // The evicted block can be registered again with new content.
  const std::vector<int32_t> other = Iota(4, 900);
  RegisterChain(pool, {0}, other);
  EXPECT_EQ(Find(pool, other), (std::vector<BlockId>{0}));
}

TEST(KvBlockPool, TouchOfACachedFreeBlockKeepsItsHash) {
  KvBlockPool pool(4, 4, true);
  const std::vector<int32_t> tokens = Iota(4, 100);
  pool.Take(3);
  RegisterChain(pool, {3}, tokens);
  pool.Release(3);
  pool.Touch(3);  // a prefix-cache hit
  EXPECT_EQ(pool.refcount(3), 1);
  EXPECT_EQ(pool.num_free(), 3);
  EXPECT_EQ(Find(pool, tokens), (std::vector<BlockId>{3}));
  pool.Touch(3);  // a second sharer
  EXPECT_EQ(pool.refcount(3), 2);
  EXPECT_TRUE(pool.CheckInvariants());
}

TEST(KvBlockPool, DuplicateRegistrationKeepsTheFirstBlock) {
  KvBlockPool pool(6, 4, true);
  const std::vector<int32_t> tokens = Iota(4, 100);
  pool.Take(4);
  pool.Take(1);
  RegisterChain(pool, {4}, tokens);
  RegisterChain(pool, {1}, tokens);  // same content computed concurrently
  EXPECT_EQ(Find(pool, tokens), (std::vector<BlockId>{4}));
  // Evicting the cached copy does not promote the duplicate (it was never registered).
  pool.Release(4);
  pool.Take(4);
  EXPECT_TRUE(Find(pool, tokens).empty());
  EXPECT_TRUE(pool.CheckInvariants());
}

TEST(KvBlockPool, ABlockKeepsItsFirstRegistration) {
  KvBlockPool pool(4, 4, true);
  const std::vector<int32_t> a = Iota(4, 100), b = Iota(4, 200);
  pool.Take(0);
  RegisterChain(pool, {0}, a);
  RegisterChain(pool, {0}, b);
  EXPECT_EQ(Find(pool, a), (std::vector<BlockId>{0}));
  EXPECT_TRUE(Find(pool, b).empty());
}

TEST(KvBlockPool, WithoutPrefixCachingNothingIsFound) {
  KvBlockPool pool(4, 4, false);
  EXPECT_FALSE(pool.prefix_caching());
  const std::vector<int32_t> tokens = Iota(8, 100);
  pool.Take(0);
  pool.Take(1);
  RegisterChain(pool, {0, 1}, tokens);
  EXPECT_TRUE(Find(pool, tokens).empty());
  EXPECT_TRUE(pool.CheckInvariants());
}

TEST(KvBlockPool, LookupCountersAccumulateTokens) {
  KvBlockPool pool(4, 4, true);
  EXPECT_EQ(pool.queried_tokens(), 0);
  EXPECT_EQ(pool.hit_tokens(), 0);
  EXPECT_DOUBLE_EQ(pool.hit_rate(), 0.0);
  pool.RecordLookup(10, 4);
  pool.RecordLookup(6, 0);
  EXPECT_EQ(pool.queried_tokens(), 16);
  EXPECT_EQ(pool.hit_tokens(), 4);
  EXPECT_DOUBLE_EQ(pool.hit_rate(), 0.25);
  // Lookups are statistics only: no block changes hands.
  EXPECT_EQ(pool.num_free(), 4);
}

// ---------------------------------------------------------------------------------------------
// Randomized model-based test: a plain reference model of refcounts, the free queue and the
// prefix cache, driven by random Take / Touch / Release / Register / FindCachedPrefix.

class PoolModel {
 public:
  PoolModel(int n, int bs)
      : bs_(bs), ref_(n, 0), tokens_(n), parent_(n, 0), hash_(n, 0), has_(n, false) {
    for (int b = 0; b < n; ++b) free_.push_back(b);
  }
  int refcount(BlockId b) const { return ref_[b]; }
  const std::list<BlockId>& free() const { return free_; }
  void Take(BlockId b) {
    free_.remove(b);
    Evict(b);
    ref_[b] = 1;
  }
  void Touch(BlockId b) {
    if (ref_[b] == 0) free_.remove(b);
    ++ref_[b];
  }
  void Release(BlockId b) {
    if (--ref_[b] == 0) free_.push_back(b);
  }
  void Register(BlockId b, BlockHash parent, BlockHash hash, std::vector<int32_t> tokens) {
    if (has_[b] || cache_.count(hash)) return;
    cache_[hash] = b;
    has_[b] = true;
    hash_[b] = hash;
    parent_[b] = parent;
    tokens_[b] = std::move(tokens);
  }
  std::vector<BlockId> Find(const std::vector<BlockHash>& hashes,
                            const std::vector<int32_t>& tokens) const {
    std::vector<BlockId> out;
    BlockHash parent = kRootHash;
    for (size_t i = 0; i < hashes.size(); ++i) {
      auto it = cache_.find(hashes[i]);
      if (it == cache_.end()) break;
      const BlockId b = it->second;
      if (parent_[b] != parent ||
          !std::equal(tokens_[b].begin(), tokens_[b].end(), tokens.begin() + i * bs_)) {
        break;
      }
      out.push_back(b);
      parent = hashes[i];
    }
    return out;
  }

 private:
  void Evict(BlockId b) {
    if (!has_[b]) return;
    cache_.erase(hash_[b]);
    has_[b] = false;
  }
  int bs_;
  std::vector<int> ref_;
  std::list<BlockId> free_;
  std::vector<std::vector<int32_t>> tokens_;
  std::vector<BlockHash> parent_, hash_;
  std::vector<bool> has_;
  std::map<BlockHash, BlockId> cache_;
};

TEST(KvBlockPool, RandomOperationsMatchAReferenceModel) {
  constexpr int kBlocks = 24, kBs = 4;
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    std::mt19937 rng(seed);
    KvBlockPool pool(kBlocks, kBs, true);
    PoolModel model(kBlocks, kBs);
    // A few documents with shared prefixes; registrations and queries come from them.
    std::vector<std::vector<int32_t>> docs;
    for (int d = 0; d < 6; ++d) {
      std::vector<int32_t> doc = Iota(6 * kBs, 1000);
      for (int i = (d % 3) * kBs; i < static_cast<int>(doc.size()); ++i) doc[i] += d * 100;
      docs.push_back(doc);
    }
    auto pick = [&](int n) { return static_cast<int>(rng() % n); };
    for (int op = 0; op < 3000; ++op) {
      const int kind = pick(10);
      const BlockId b = pick(kBlocks);
      if (kind <= 2) {  // Take a free block (the head most of the time, as the scheduler does)
        if (model.free().empty()) continue;
        BlockId t = model.free().front();
        if (pick(3) == 0) t = *std::next(model.free().begin(), pick(model.free().size()));
        pool.Take(t);
        model.Take(t);
      } else if (kind == 3) {
        pool.Touch(b);
        model.Touch(b);
      } else if (kind <= 5) {
        if (model.refcount(b) == 0) continue;
        pool.Release(b);
        model.Release(b);
      } else if (kind <= 7) {  // Register b as block j of a document (rarely with wrong tokens)
        if (model.refcount(b) == 0) continue;
        const std::vector<int32_t>& doc = docs[pick(docs.size())];
        const std::vector<BlockHash> h = HashFullBlocks(doc, kBs);
        const int j = pick(h.size());
        std::vector<int32_t> toks(doc.begin() + j * kBs, doc.begin() + (j + 1) * kBs);
        if (pick(8) == 0) toks[pick(kBs)] += 7;  // a colliding registration
        const BlockHash parent = j == 0 ? kRootHash : h[j - 1];
        pool.Register(b, parent, h[j], toks);
        model.Register(b, parent, h[j], toks);
      } else {  // Query a document prefix
        const std::vector<int32_t>& doc = docs[pick(docs.size())];
        std::vector<int32_t> q(doc.begin(), doc.begin() + 1 + pick(doc.size()));
        const std::vector<BlockHash> h = HashFullBlocks(q, kBs);
        ASSERT_EQ(pool.FindCachedPrefix(h, q), model.Find(h, q)) << "seed " << seed << " op " << op;
      }
      ASSERT_TRUE(pool.CheckInvariants()) << "seed " << seed << " op " << op;
      ASSERT_EQ(FreeQueue(pool), std::vector<BlockId>(model.free().begin(), model.free().end()))
          << "seed " << seed << " op " << op;
      ASSERT_EQ(pool.num_free(), static_cast<int>(model.free().size()));
      for (BlockId x = 0; x < kBlocks; ++x) {
        ASSERT_EQ(pool.refcount(x), model.refcount(x)) << "block " << x << " seed " << seed;
      }
    }
  }
}

}  // namespace
}  // namespace moe::scheduler
