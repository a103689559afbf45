// CPU tests of the MoE kernels' index math (cuda/kernels/moe_index_math.h): segment sizes and
// padding, the permute decomposition (emulated on the host against the CPU reference), the
// grouped-GEMM tile schedule over ragged experts, the shared-memory swizzle, and a simulation of
// one CTA tile of the mma.sync kernel (ldmatrix and mma modelled from the PTX ISA) built on the
// same address and fragment maps the kernel uses. No GPU needed.
#include "cuda/kernels/moe_index_math.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "core/bf16.h"
#include "core/tensor_view.h"
#include "cuda/kernels/grouped_gemm.h"
#include "cuda/kernels/permute.h"
#include "cuda/kernels/router_topk.h"
#include "engine/backend.h"
#include "engine/cpu/reference_ops.h"

namespace moe::cuda {
namespace {

constexpr GemmTileShape kAllShapes[] = {kTileM16, kTileM64, kTileM128};

std::vector<int32_t> OffsetsFromCounts(const std::vector<int32_t>& counts) {
  std::vector<int32_t> offsets(counts.size() + 1, 0);
  for (size_t e = 0; e < counts.size(); ++e) offsets[e + 1] = offsets[e] + counts[e];
  return offsets;
}

// Ragged counts with empty experts (the first, the last and random ones).
std::vector<int32_t> RaggedCounts(int num_experts, int max_rows, std::mt19937& rng) {
  std::vector<int32_t> counts(num_experts);
  std::uniform_int_distribution<int> rows(0, max_rows);
  std::bernoulli_distribution empty(0.3);
  for (int e = 0; e < num_experts; ++e) counts[e] = empty(rng) ? 0 : rows(rng);
  counts.front() = 0;
  if (num_experts > 2) counts.back() = 0;
  return counts;
}

// ---------------------------------------------------------------------------------------------
// Segments and capacities.

TEST(MoeIndexMathTest, SegmentRowsRoundsUpToAlignment) {
  EXPECT_EQ(SegmentRows(0, 1), 0);
  EXPECT_EQ(SegmentRows(5, 1), 5);
  EXPECT_EQ(SegmentRows(0, 16), 0);
  EXPECT_EQ(SegmentRows(1, 16), 16);
  EXPECT_EQ(SegmentRows(16, 16), 16);
  EXPECT_EQ(SegmentRows(17, 16), 32);
  EXPECT_EQ(SegmentRows(129, 128), 256);
}

TEST(MoeIndexMathTest, PermuteRowCapacityBoundsEveryRouting) {
  EXPECT_EQ(PermuteRowCapacity(0, 8, 64, 1), 0);
  EXPECT_EQ(PermuteRowCapacity(0, 8, 64, 128), 0);
  EXPECT_EQ(PermuteRowCapacity(7, 2, 8, 1), 14);
  EXPECT_EQ(PermuteRowCapacity(1, 8, 128, 16), 8 + 8 * 15);  // 8 experts with 1 row each
  EXPECT_EQ(PermuteRowCapacity(64, 8, 8, 16), 512 + 8 * 15);
  std::mt19937 rng(1);
  for (int trial = 0; trial < 2000; ++trial) {
    const int num_experts = 1 + static_cast<int>(rng() % 20);
    const int num_tokens = static_cast<int>(rng() % 30);
    const int top_k = 1 + static_cast<int>(rng() % std::min(num_experts, 8));
    const int align = 1 + static_cast<int>(rng() % 20);
    std::vector<int32_t> counts(num_experts, 0);
    for (int s = 0; s < num_tokens * top_k; ++s) {
      if (rng() % 5 != 0) ++counts[rng() % num_experts];  // some slots route nowhere
    }
    int64_t rows = 0;
    for (int32_t c : counts) rows += SegmentRows(c, align);
    EXPECT_LE(rows, PermuteRowCapacity(num_tokens, top_k, num_experts, align));
  }
}

// ---------------------------------------------------------------------------------------------
// Permute: the kernels' chunk / warp / round decomposition, emulated on the host.

struct PermuteMaps {
  std::vector<int32_t> offsets;
  std::vector<int32_t> row_to_token;
  std::vector<int32_t> slot_to_row;
};

// The four passes of permute.cuh on the host, round by round, using the same helpers.
PermuteMaps EmulatePermute(const std::vector<int32_t>& ids, int top_k, int num_experts, int align) {
  const int64_t num_slots = static_cast<int64_t>(ids.size());
  const int64_t num_tokens = num_slots / top_k;
  const int64_t chunks = PermuteNumChunks(num_slots);
  // Pass 1: per-chunk histograms.
  std::vector<int32_t> chunk_counts(chunks * num_experts, 0);
  for (int64_t c = 0; c < chunks; ++c) {
    for (int w = 0; w < kPermuteWarpsPerChunk; ++w) {
      const SlotRange r = PermuteWarpSlots(num_slots, c, w);
      for (int64_t s = r.begin; s < r.end; ++s) {
        if (IsRoutedExpert(ids[s], num_experts)) ++chunk_counts[c * num_experts + ids[s]];
      }
    }
  }
  // Pass 2: bases, offsets, pad rows.
  PermuteMaps m;
  m.offsets.assign(num_experts + 1, 0);
  m.row_to_token.assign(PermuteRowCapacity(num_tokens, top_k, num_experts, align), -7);
  m.slot_to_row.assign(num_slots, -7);
  std::vector<int32_t> counts(num_experts, 0);
  for (int e = 0; e < num_experts; ++e) {
    for (int64_t c = 0; c < chunks; ++c) {
      const int32_t n = chunk_counts[c * num_experts + e];
      chunk_counts[c * num_experts + e] = counts[e];
      counts[e] += n;
    }
    m.offsets[e + 1] = m.offsets[e] + static_cast<int32_t>(SegmentRows(counts[e], align));
  }
  for (int e = 0; e < num_experts; ++e) {
    for (int64_t c = 0; c < chunks; ++c) chunk_counts[c * num_experts + e] += m.offsets[e];
    for (int32_t r = m.offsets[e] + counts[e]; r < m.offsets[e + 1]; ++r) m.row_to_token[r] = -1;
  }
  // Pass 3: per warp counts, scanned over warps, then rounds of 32 lanes in lane order.
  for (int64_t c = 0; c < chunks; ++c) {
    std::vector<int32_t> warp_base(kPermuteWarpsPerChunk * num_experts, 0);
    for (int w = 0; w < kPermuteWarpsPerChunk; ++w) {
      const SlotRange r = PermuteWarpSlots(num_slots, c, w);
      for (int64_t s = r.begin; s < r.end; ++s) {
        if (IsRoutedExpert(ids[s], num_experts)) ++warp_base[w * num_experts + ids[s]];
      }
    }
    for (int e = 0; e < num_experts; ++e) {
      int32_t running = chunk_counts[c * num_experts + e];
      for (int w = 0; w < kPermuteWarpsPerChunk; ++w) {
        const int32_t n = warp_base[w * num_experts + e];
        warp_base[w * num_experts + e] = running;
        running += n;
      }
    }
    for (int w = 0; w < kPermuteWarpsPerChunk; ++w) {
      const SlotRange r = PermuteWarpSlots(num_slots, c, w);
      for (int64_t round = r.begin; round < r.end; round += 32) {
        int32_t lane_expert[32];
        for (int lane = 0; lane < 32; ++lane) {
          const int64_t s = round + lane;
          lane_expert[lane] = s < r.end && IsRoutedExpert(ids[s], num_experts) ? ids[s] : -1;
        }
        for (int lane = 0; lane < 32; ++lane) {
          const int64_t s = round + lane;
          const int32_t e = lane_expert[lane];
          if (e < 0) {
            if (s < r.end) m.slot_to_row[s] = -1;
            continue;
          }
          int rank = 0;  // popc(match_any peers below this lane)
          for (int other = 0; other < lane; ++other) rank += lane_expert[other] == e;
          const int32_t row = warp_base[w * num_experts + e] + rank;
          m.slot_to_row[s] = row;
          m.row_to_token[row] = static_cast<int32_t>(s / top_k);
        }
        for (int lane = 0; lane < 32; ++lane) {
          const int32_t e = lane_expert[lane];
          bool leader = e >= 0;
          for (int other = 0; other < lane && leader; ++other) leader = lane_expert[other] != e;
          if (!leader) continue;
          int peers = 0;
          for (int other = 0; other < 32; ++other) peers += lane_expert[other] == e;
          warp_base[w * num_experts + e] += peers;
        }
      }
    }
  }
  return m;
}

// Random routing: each token picks top_k distinct experts (skewed towards low ids so some
// experts stay empty), and with probability drop_p a slot routes nowhere (-1).
std::vector<int32_t> RandomRouting(int num_tokens, int top_k, int num_experts, double drop_p,
                                   std::mt19937& rng) {
  std::vector<int32_t> ids(static_cast<size_t>(num_tokens) * top_k);
  std::vector<int32_t> pool(num_experts);
  std::bernoulli_distribution drop(drop_p);
  for (int t = 0; t < num_tokens; ++t) {
    std::iota(pool.begin(), pool.end(), 0);
    for (int j = 0; j < top_k; ++j) {
      const int span = std::max(1, (num_experts - j) * 3 / 4);
      const int pick = j + static_cast<int>(rng() % span);
      std::swap(pool[j], pool[std::min(pick, num_experts - 1)]);
      ids[static_cast<size_t>(t) * top_k + j] = drop(rng) ? -1 : pool[j];
    }
  }
  return ids;
}

TEST(MoeIndexMathTest, EmulatedPermuteMatchesReferenceExactly) {
  std::mt19937 rng(7);
  struct Case {
    int tokens, top_k, experts;
    double drop;
  };
  // 0 and 1 tokens, one chunk, several chunks with a partial last warp, many experts.
  const Case cases[] = {{0, 8, 64, 0.0},    {1, 1, 8, 0.0},     {1, 8, 128, 0.3},
                        {7, 2, 8, 0.0},     {64, 8, 64, 0.1},   {300, 8, 8, 0.0},
                        {700, 8, 128, 0.2}, {1000, 2, 64, 0.5}, {513, 1, 8, 0.0}};
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "T=" << c.tokens << " k=" << c.top_k << " E=" << c.experts
                                      << " drop=" << c.drop);
    const std::vector<int32_t> ids = RandomRouting(c.tokens, c.top_k, c.experts, c.drop, rng);
    const PermuteMaps got = EmulatePermute(ids, c.top_k, c.experts, 1);

    const int64_t slots = static_cast<int64_t>(c.tokens) * c.top_k;
    const int hidden = 3;
    std::vector<float> x(static_cast<size_t>(c.tokens) * hidden);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i);
    std::vector<float> rows(std::max<int64_t>(slots, 1) * hidden);
    PermuteMaps want;
    want.offsets.assign(c.experts + 1, -9);
    want.row_to_token.assign(std::max<int64_t>(slots, 1), -7);
    want.slot_to_row.assign(std::max<int64_t>(slots, 1), -7);
    engine::PermuteArgs args;
    args.x = TensorView::Contiguous(x.data(), DType::kF32, c.tokens, hidden);
    args.expert_ids = ids.data();
    args.num_tokens = c.tokens;
    args.top_k = c.top_k;
    args.num_experts = c.experts;
    args.rows = TensorView::Contiguous(rows.data(), DType::kF32, slots, hidden);
    args.expert_offsets = want.offsets.data();
    args.row_to_token = want.row_to_token.data();
    args.slot_to_row = want.slot_to_row.data();
    engine::cpu::ref::Permute(args);

    EXPECT_EQ(got.offsets, want.offsets);
    const int32_t r = want.offsets.back();
    EXPECT_TRUE(std::equal(got.row_to_token.begin(), got.row_to_token.begin() + r,
                           want.row_to_token.begin()));
    EXPECT_TRUE(std::equal(got.slot_to_row.begin(), got.slot_to_row.begin() + slots,
                           want.slot_to_row.begin()));
  }
}

TEST(MoeIndexMathTest, EmulatedPaddedPermuteKeepsOrderAndMarksPads) {
  std::mt19937 rng(11);
  for (int align : {2, 16, 128}) {
    const int tokens = 300, top_k = 8, experts = 64;
    const std::vector<int32_t> ids = RandomRouting(tokens, top_k, experts, 0.2, rng);
    const PermuteMaps padded = EmulatePermute(ids, top_k, experts, align);
    const PermuteMaps plain = EmulatePermute(ids, top_k, experts, 1);
    ASSERT_LE(padded.offsets.back(), PermuteRowCapacity(tokens, top_k, experts, align));
    for (int e = 0; e < experts; ++e) {
      const int32_t count = plain.offsets[e + 1] - plain.offsets[e];
      EXPECT_EQ(padded.offsets[e] % align, 0) << "segment start aligned, expert " << e;
      EXPECT_EQ(padded.offsets[e + 1] - padded.offsets[e], SegmentRows(count, align));
      for (int32_t i = 0; i < count; ++i) {  // same rows in the same order, shifted
        EXPECT_EQ(padded.row_to_token[padded.offsets[e] + i],
                  plain.row_to_token[plain.offsets[e] + i]);
      }
      for (int32_t r = padded.offsets[e] + count; r < padded.offsets[e + 1]; ++r) {
        EXPECT_EQ(padded.row_to_token[r], -1) << "pad row " << r;
      }
    }
    for (size_t s = 0; s < ids.size(); ++s) {
      if (plain.slot_to_row[s] < 0) {
        EXPECT_EQ(padded.slot_to_row[s], -1);
        continue;
      }
      EXPECT_EQ(padded.row_to_token[padded.slot_to_row[s]], static_cast<int32_t>(s / top_k));
    }
  }
}

TEST(MoeIndexMathTest, PermuteWarpSlotsTileTheSlotRange) {
  for (int64_t slots : {int64_t{0}, int64_t{1}, int64_t{255}, int64_t{2048}, int64_t{5000}}) {
    std::vector<int> seen(slots, 0);
    for (int64_t c = 0; c < PermuteNumChunks(slots); ++c) {
      int64_t prev_end = c * kPermuteSlotsPerChunk;
      for (int w = 0; w < kPermuteWarpsPerChunk; ++w) {
        const SlotRange r = PermuteWarpSlots(slots, c, w);
        EXPECT_LE(r.begin, r.end);
        if (r.begin < slots) {
          EXPECT_EQ(r.begin, prev_end);  // ordered, contiguous
        }
        for (int64_t s = r.begin; s < r.end; ++s) ++seen[s];
        prev_end = std::max(prev_end, r.end);
      }
    }
    for (int64_t s = 0; s < slots; ++s) EXPECT_EQ(seen[s], 1) << "slot " << s;
  }
}

// ---------------------------------------------------------------------------------------------
// Grouped GEMM schedule.

TEST(MoeIndexMathTest, MaxGroupedMTilesIsTheExactWorstCase) {
  // Brute force over all count vectors with sum <= capacity for small E.
  for (int experts = 1; experts <= 4; ++experts) {
    for (int capacity = 0; capacity <= 9; ++capacity) {
      for (int block_m : {1, 2, 3, 16}) {
        int64_t worst = 0;
        std::vector<int> c(experts, 0);
        while (true) {
          int sum = 0;
          int64_t tiles = 0;
          for (int v : c) {
            sum += v;
            tiles += SegmentMTiles(0, v, block_m);
          }
          if (sum <= capacity) worst = std::max(worst, tiles);
          int i = 0;
          while (i < experts && ++c[i] > capacity) c[i++] = 0;
          if (i == experts) break;
        }
        EXPECT_EQ(MaxGroupedMTiles(capacity, experts, block_m), worst)
            << "E=" << experts << " cap=" << capacity << " bm=" << block_m;
      }
    }
  }
}

TEST(MoeIndexMathTest, FindExpertSkipsEmptyExperts) {
  const std::vector<int32_t> counts = {0, 3, 0, 0, 17, 0, 1, 0};
  const std::vector<int32_t> offsets = OffsetsFromCounts(counts);
  std::vector<int32_t> prefix(counts.size() + 1);
  ComputeMTilePrefix(offsets.data(), static_cast<int>(counts.size()), 16, prefix.data());
  EXPECT_EQ(prefix, (std::vector<int32_t>{0, 0, 1, 1, 1, 3, 3, 4, 4}));
  const int e_count = static_cast<int>(counts.size());
  EXPECT_EQ(FindExpertOfMTile(prefix.data(), e_count, 0), 1);
  EXPECT_EQ(FindExpertOfMTile(prefix.data(), e_count, 1), 4);
  EXPECT_EQ(FindExpertOfMTile(prefix.data(), e_count, 2), 4);
  EXPECT_EQ(FindExpertOfMTile(prefix.data(), e_count, 3), 6);
}

// Every (row, column block) of every segment is produced by exactly one tile, tiles stay inside
// one segment, and the tile count fits the host bound the grid is sized with.
void CheckScheduleCovers(const std::vector<int32_t>& counts, const GemmTileShape& shape, int n) {
  const int num_experts = static_cast<int>(counts.size());
  const std::vector<int32_t> offsets = OffsetsFromCounts(counts);
  const int64_t rows = offsets.back();
  std::vector<int32_t> prefix(num_experts + 1);
  ComputeMTilePrefix(offsets.data(), num_experts, shape.block_m, prefix.data());
  const int n_tiles = static_cast<int>(CeilDiv(n, shape.block_n));
  ASSERT_LE(prefix.back(), MaxGroupedMTiles(rows, num_experts, shape.block_m));
  std::vector<int> covered(rows * n_tiles, 0);
  const int64_t num_tiles = static_cast<int64_t>(prefix.back()) * n_tiles;
  for (int64_t tile = 0; tile < num_tiles; ++tile) {
    const GroupedTile t = DecodeGroupedTile(tile, n_tiles, prefix.data(), offsets.data(),
                                            num_experts, shape.block_m, shape.block_n, rows);
    ASSERT_GE(t.expert, 0);
    ASSERT_LT(t.expert, num_experts);
    EXPECT_GT(counts[t.expert], 0) << "tile of an empty expert";
    EXPECT_GE(t.row_begin, offsets[t.expert]);
    EXPECT_LE(t.row_end, offsets[t.expert + 1]);
    EXPECT_GE(t.row_end - t.row_begin, 1);
    EXPECT_LE(t.row_end - t.row_begin, shape.block_m);
    EXPECT_EQ((t.row_begin - offsets[t.expert]) % shape.block_m, 0);
    EXPECT_EQ(t.n_begin % shape.block_n, 0);
    EXPECT_LT(t.n_begin, n);
    for (int32_t r = t.row_begin; r < t.row_end; ++r)
      ++covered[r * n_tiles + t.n_begin / shape.block_n];
  }
  for (size_t i = 0; i < covered.size(); ++i) ASSERT_EQ(covered[i], 1) << "cell " << i;
}

TEST(MoeIndexMathTest, TileScheduleCoversRaggedExperts) {
  std::mt19937 rng(3);
  for (const GemmTileShape& shape : kAllShapes) {
    SCOPED_TRACE(::testing::Message() << "block_m=" << shape.block_m);
    CheckScheduleCovers({0}, shape, 64);             // nothing routed
    CheckScheduleCovers({1}, shape, 8);              // one row, narrow n
    CheckScheduleCovers({0, 0, 5, 0}, shape, 1536);  // one non-empty expert
    CheckScheduleCovers({129, 0, 1, 256, 0}, shape, 2048);
    for (int trial = 0; trial < 30; ++trial) {
      const int experts = 1 + static_cast<int>(rng() % 130);
      const int max_rows = trial % 3 == 0 ? 4 : (trial % 3 == 1 ? 70 : 400);
      const int n = 8 * (1 + static_cast<int>(rng() % 300));
      CheckScheduleCovers(RaggedCounts(experts, max_rows, rng), shape, n);
    }
  }
}

TEST(MoeIndexMathTest, DecodeClipsRowsToCapacity) {
  const std::vector<int32_t> offsets = {0, 40, 100};  // claims 100 rows
  std::vector<int32_t> prefix(3);
  ComputeMTilePrefix(offsets.data(), 2, 16, prefix.data());
  // Expert 0: m-tiles 0..2 (rows 0, 16, 32); expert 1: m-tiles 3..6 (rows 40, 56, 72, 88).
  const GroupedTile t = DecodeGroupedTile(/*tile=*/3, 1, prefix.data(), offsets.data(), 2, 16, 64,
                                          /*row_capacity=*/50);
  EXPECT_EQ(t.expert, 1);
  EXPECT_EQ(t.row_begin, 40);
  EXPECT_EQ(t.row_end, 50);
  const GroupedTile past = DecodeGroupedTile(4, 1, prefix.data(), offsets.data(), 2, 16, 64, 50);
  EXPECT_LE(past.row_end, past.row_begin);  // the kernel skips such a tile
}

TEST(MoeIndexMathTest, TileShapesSatisfyKernelConstraints) {
  for (const GemmTileShape& s : kAllShapes) {
    const int chunks = s.block_k / 8;
    EXPECT_EQ(s.WarpTileM() % 16, 0);
    EXPECT_EQ(s.WarpTileN() % 16, 0);  // whole gate/up n8 pairs per warp
    EXPECT_EQ(s.block_m * chunks % s.Threads(), 0);
    EXPECT_EQ(s.block_n * chunks % s.Threads(), 0);
    EXPECT_EQ((s.Threads() / chunks) % 8, 0);  // copy passes keep the swizzle phase
    // Fits in the sm_80 opt-in shared memory (163 KiB) with the largest schedule.
    EXPECT_LE(s.PipelineBytes() + ScheduleSmemBytes(kGroupedGemmMaxExperts), 163 * 1024);
  }
}

// ---------------------------------------------------------------------------------------------
// Shared-memory swizzle.

int BankGroup(int row, int chunk, int chunks_per_row) {
  return (row * chunks_per_row + SwizzleChunk(row, chunk, chunks_per_row)) % 8;
}

TEST(MoeIndexMathTest, SwizzleIsAPermutationOfEachRow) {
  for (int chunks : {2, 4, 8}) {
    for (int row = 0; row < 64; ++row) {
      std::set<int> phys;
      for (int c = 0; c < chunks; ++c) phys.insert(SwizzleChunk(row, c, chunks));
      EXPECT_EQ(static_cast<int>(phys.size()), chunks);
      EXPECT_EQ(*phys.rbegin(), chunks - 1);
    }
  }
}

TEST(MoeIndexMathTest, SwizzleMakesLdmatrixAndCopiesConflictFree) {
  for (int chunks : {2, 4, 8}) {
    for (int row0 = 0; row0 < 64; row0 += 8) {
      // One ldmatrix phase: 8 consecutive rows, one logical chunk.
      for (int c = 0; c < chunks; ++c) {
        std::set<int> groups;
        for (int i = 0; i < 8; ++i) groups.insert(BankGroup(row0 + i, c, chunks));
        EXPECT_EQ(groups.size(), 8u) << "chunks=" << chunks << " row0=" << row0 << " c=" << c;
      }
    }
    // One cp.async phase: 8 consecutive threads = consecutive (row, chunk) cells.
    for (int first = 0; first < 256; first += 8) {
      std::set<int> groups;
      for (int id = first; id < first + 8; ++id) {
        groups.insert(BankGroup(id / chunks, id % chunks, chunks));
      }
      EXPECT_EQ(groups.size(), 8u);
    }
  }
}

TEST(MoeIndexMathTest, CopyPassesShiftByConstantOffset) {
  for (const GemmTileShape& s : kAllShapes) {
    const int chunks = s.block_k / 8;
    const int rows_per_pass = s.Threads() / chunks;
    for (int tid = 0; tid < s.Threads(); ++tid) {
      const int row = tid / chunks;
      for (int pass = 0; pass * rows_per_pass < std::max(s.block_m, s.block_n); ++pass) {
        EXPECT_EQ(SwizzledOffset(row + pass * rows_per_pass, tid % chunks, s.block_k),
                  SwizzledOffset(row, tid % chunks, s.block_k) + pass * rows_per_pass * s.block_k);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One CTA tile of the mma.sync kernel, simulated. ldmatrix and mma follow the PTX ISA
// definitions written out here independently; the kernel's maps (LdmatrixALane/BLane,
// AccumulatorRow/Col, SwizzledOffset, FeatureOfPackedRow) decide every address and placement.

using Reg = std::array<float, 2>;  // one 32-bit register = two b16 elements

// ldmatrix.sync.m8n8.x4.b16: matrix j takes its 8 row addresses from lanes 8j .. 8j+7; thread t
// receives elements 2 (t % 4), 2 (t % 4) + 1 of row t / 4 of each matrix.
void SimLdmatrixX4(const std::vector<float>& smem, const int (&lane_offset)[32],
                   Reg (&out)[32][4]) {
  for (int j = 0; j < 4; ++j) {
    for (int t = 0; t < 32; ++t) {
      const int base = lane_offset[8 * j + t / 4] + 2 * (t % 4);
      out[t][j] = {smem[base], smem[base + 1]};
    }
  }
}

// mma.m16n8k16.row.col: with g = t / 4, q = t % 4, A regs (g, 2q..), (g+8, 2q..), (g, 2q+8..),
// (g+8, 2q+8..); B regs (k 2q.., n g), (k 2q+8.., n g); C/D regs (g, 2q), (g, 2q+1), (g+8, 2q),
// (g+8, 2q+1).
void SimMma(float (&acc)[32][4], const Reg (&a)[32][4], const Reg (&b)[32][2]) {
  float am[16][16], bm[16][8];
  for (int t = 0; t < 32; ++t) {
    const int g = t / 4, q = t % 4;
    for (int e = 0; e < 2; ++e) {
      am[g][2 * q + e] = a[t][0][e];
      am[g + 8][2 * q + e] = a[t][1][e];
      am[g][2 * q + 8 + e] = a[t][2][e];
      am[g + 8][2 * q + 8 + e] = a[t][3][e];
      bm[2 * q + e][g] = b[t][0][e];
      bm[2 * q + 8 + e][g] = b[t][1][e];
    }
  }
  for (int t = 0; t < 32; ++t) {
    const int g = t / 4, q = t % 4;
    const int rows[4] = {g, g, g + 8, g + 8};
    const int cols[4] = {2 * q, 2 * q + 1, 2 * q, 2 * q + 1};
    for (int i = 0; i < 4; ++i) {
      float d = 0.f;
      for (int kk = 0; kk < 16; ++kk) d += am[rows[i]][kk] * bm[kk][cols[i]];
      acc[t][i] += d;
    }
  }
}

// Runs the kernel's tile loop for A [m, k] and B [n_rows, k] (both row-major, m <= block_m,
// n_rows <= block_n) and returns the accumulators placed by the kernel's epilogue maps:
// out[row][col] for the plain epilogue. Values are small integers, so sums are exact.
std::vector<float> SimulateTile(const GemmTileShape& s, const std::vector<float>& a, int m,
                                const std::vector<float>& b, int n_rows, int k) {
  const int chunks = s.block_k / 8;
  const int rows_per_pass = s.Threads() / chunks;
  const int tm = s.WarpTileM(), tn = s.WarpTileN();
  const int mt_count = tm / 16, nt_count = tn / 8;
  std::vector<float> smem_a(s.block_m * s.block_k), smem_b(s.block_n * s.block_k);
  std::vector<float> acc(static_cast<size_t>(s.Threads()) * mt_count * nt_count * 4, 0.f);
  auto acc_at = [&](int warp, int lane, int mt, int nt) {
    return &acc[((((warp * 32) + lane) * mt_count + mt) * nt_count + nt) * 4];
  };
  for (int k0 = 0; k0 < k; k0 += s.block_k) {
    // cp.async copies with zero fill, placed as the kernel does (copy_dst + pass offset).
    for (int tid = 0; tid < s.Threads(); ++tid) {
      const int chunk = tid % chunks;
      const int row0 = tid / chunks;
      const int dst0 = SwizzledOffset(row0, chunk, s.block_k);
      auto copy = [&](std::vector<float>& smem, const std::vector<float>& src, int valid_rows,
                      int tile_rows) {
        for (int pass = 0; row0 + pass * rows_per_pass < tile_rows; ++pass) {
          const int row = row0 + pass * rows_per_pass;
          for (int e = 0; e < 8; ++e) {
            const int kc = k0 + chunk * 8 + e;
            const bool ok = row < valid_rows && k0 + chunk * 8 < k;
            smem[dst0 + pass * rows_per_pass * s.block_k + e] =
                ok && kc < k ? src[static_cast<size_t>(row) * k + kc] : 0.f;
          }
        }
      };
      copy(smem_a, a, m, s.block_m);
      copy(smem_b, b, n_rows, s.block_n);
    }
    for (int warp = 0; warp < s.warps_m * s.warps_n; ++warp) {
      const int warp_m = warp / s.warps_n, warp_n = warp % s.warps_n;
      for (int kk = 0; kk < s.block_k / 16; ++kk) {
        for (int mt = 0; mt < mt_count; ++mt) {
          int offs[32];
          for (int lane = 0; lane < 32; ++lane) {
            const RowChunk rc = LdmatrixALane(lane, warp_m * tm + mt * 16, kk);
            offs[lane] = SwizzledOffset(rc.row, rc.chunk, s.block_k);
          }
          Reg r[32][4];
          SimLdmatrixX4(smem_a, offs, r);
          for (int nt2 = 0; nt2 < nt_count / 2; ++nt2) {
            int boffs[32];
            for (int lane = 0; lane < 32; ++lane) {
              const RowChunk rc = LdmatrixBLane(lane, warp_n * tn + nt2 * 16, kk);
              boffs[lane] = SwizzledOffset(rc.row, rc.chunk, s.block_k);
            }
            Reg br[32][4];
            SimLdmatrixX4(smem_b, boffs, br);
            for (int half = 0; half < 2; ++half) {
              Reg bfrag[32][2];
              for (int lane = 0; lane < 32; ++lane) {
                bfrag[lane][0] = br[lane][2 * half];
                bfrag[lane][1] = br[lane][2 * half + 1];
              }
              float d[32][4];
              for (int lane = 0; lane < 32; ++lane) {
                for (int i = 0; i < 4; ++i) d[lane][i] = acc_at(warp, lane, mt, 2 * nt2 + half)[i];
              }
              SimMma(d, r, bfrag);
              for (int lane = 0; lane < 32; ++lane) {
                for (int i = 0; i < 4; ++i) acc_at(warp, lane, mt, 2 * nt2 + half)[i] = d[lane][i];
              }
            }
          }
        }
      }
    }
  }
  // Plain epilogue placement.
  std::vector<float> out(static_cast<size_t>(s.block_m) * s.block_n, 0.f);
  for (int warp = 0; warp < s.warps_m * s.warps_n; ++warp) {
    const int warp_m = warp / s.warps_n, warp_n = warp % s.warps_n;
    for (int lane = 0; lane < 32; ++lane) {
      for (int mt = 0; mt < mt_count; ++mt) {
        for (int nt = 0; nt < nt_count; ++nt) {
          for (int i = 0; i < 4; ++i) {
            const int row = warp_m * tm + mt * 16 + AccumulatorRow(lane, i);
            const int col = warp_n * tn + nt * 8 + AccumulatorCol(lane, i);
            out[static_cast<size_t>(row) * s.block_n + col] = acc_at(warp, lane, mt, nt)[i];
          }
        }
      }
    }
  }
  return out;
}

TEST(MoeIndexMathTest, SimulatedMmaTileComputesTheGemm) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> small(-3, 3);
  for (const GemmTileShape& s : kAllShapes) {
    // A partial tile (rows and columns short) and a k tail that is not a multiple of block_k.
    for (int k : {s.block_k, 2 * s.block_k + 8}) {
      const int m = std::max(1, s.block_m - 3);
      const int n_rows = s.block_n - 8;
      std::vector<float> a(static_cast<size_t>(m) * k), b(static_cast<size_t>(n_rows) * k);
      for (float& v : a) v = static_cast<float>(small(rng));
      for (float& v : b) v = static_cast<float>(small(rng));
      const std::vector<float> out = SimulateTile(s, a, m, b, n_rows, k);
      for (int r = 0; r < s.block_m; ++r) {
        for (int c = 0; c < s.block_n; ++c) {
          float want = 0.f;
          if (r < m && c < n_rows) {
            for (int i = 0; i < k; ++i)
              want += a[static_cast<size_t>(r) * k + i] * b[static_cast<size_t>(c) * k + i];
          }
          ASSERT_EQ(out[static_cast<size_t>(r) * s.block_n + c], want)
              << "block_m=" << s.block_m << " k=" << k << " r=" << r << " c=" << c;
        }
      }
    }
  }
}

// The SwiGLU epilogue pairs n8 tile 2np (gate) with 2np + 1 (up) of the packed weights and
// writes feature FeatureOfPackedRow(packed column); check that this pairing recovers gate and
// up of the same feature for the packing PackGateUpWeights produces.
TEST(MoeIndexMathTest, SwiGluEpiloguePairsGateAndUpOfOneFeature) {
  const int f = 40, h = 8;
  std::vector<Bf16> gate(f * h), up(f * h), packed(2 * f * h);
  for (int i = 0; i < f; ++i) {
    for (int j = 0; j < h; ++j) {
      gate[i * h + j] = ToBf16(static_cast<float>(i));     // gate row i holds i
      up[i * h + j] = ToBf16(static_cast<float>(-1 - i));  // up row i holds -1 - i
    }
  }
  PackGateUpWeights(gate.data(), up.data(), f, h, packed.data());
  for (const GemmTileShape& s : kAllShapes) {
    const int tn = s.WarpTileN();
    for (int n_begin = 0; n_begin < 2 * f; n_begin += s.block_n) {
      for (int warp_n = 0; warp_n < s.warps_n; ++warp_n) {
        for (int np = 0; np < tn / 16; ++np) {
          const int packed_col = n_begin + warp_n * tn + np * 16;
          if (packed_col >= 2 * f) continue;
          for (int lane = 0; lane < 32; ++lane) {
            for (int i = 0; i < 2; ++i) {
              const int gate_col = packed_col + AccumulatorCol(lane, i);  // n8 tile 2np
              const int up_col = gate_col + 8;                            // n8 tile 2np + 1
              const int64_t feature = FeatureOfPackedRow(packed_col + AccumulatorCol(lane, 0)) + i;
              EXPECT_EQ(ToFloat(packed[gate_col * h]), static_cast<float>(feature));
              EXPECT_EQ(ToFloat(packed[up_col * h]), static_cast<float>(-1 - feature));
              EXPECT_FALSE(IsUpPackedRow(gate_col));
              EXPECT_TRUE(IsUpPackedRow(up_col));
            }
          }
        }
      }
    }
  }
}

TEST(MoeIndexMathTest, GateUpInterleaveIsABijection) {
  const int64_t f = 768;
  std::vector<int> hits(2 * f, 0);
  for (int64_t i = 0; i < f; ++i) {
    ++hits[PackedGateRow(i)];
    ++hits[PackedUpRow(i)];
    EXPECT_EQ(FeatureOfPackedRow(PackedGateRow(i)), i);
    EXPECT_EQ(FeatureOfPackedRow(PackedUpRow(i)), i);
    EXPECT_FALSE(IsUpPackedRow(PackedGateRow(i)));
    EXPECT_TRUE(IsUpPackedRow(PackedUpRow(i)));
  }
  for (int v : hits) EXPECT_EQ(v, 1);
}

// ---------------------------------------------------------------------------------------------
// Host-side problem checks and configuration choice.

TEST(MoeIndexMathTest, RouterLaneLayout) {
  EXPECT_EQ(RouterExpertsPerLane(1), 1);
  EXPECT_EQ(RouterExpertsPerLane(8), 1);
  EXPECT_EQ(RouterExpertsPerLane(33), 2);
  EXPECT_EQ(RouterExpertsPerLane(64), 2);
  EXPECT_EQ(RouterExpertsPerLane(128), 4);
  EXPECT_EQ(RouterExpertsPerLane(129), 8);
  EXPECT_EQ(RouterExpertsPerLane(256), 8);
  EXPECT_EQ(RouterExpertsPerLane(257), 0);
  RouterTopKProblem p{.num_tokens = 5, .num_experts = 128, .top_k = 8};
  EXPECT_TRUE(RouterTopKCanImplement(p));
  p.top_k = 33;
  EXPECT_FALSE(RouterTopKCanImplement(p));
  p.top_k = 8;
  p.num_experts = 300;
  EXPECT_FALSE(RouterTopKCanImplement(p));
  p.num_experts = 128;
  p.logits_dtype = DType::kI32;
  EXPECT_FALSE(RouterTopKCanImplement(p));
}

TEST(MoeIndexMathTest, GroupedGemmTileChoiceFollowsRowsPerExpert) {
  GroupedGemmProblem p{
      .num_experts = 128, .n = 1536, .k = 2048, .epilogue = GroupedGemmEpilogue::kSwiGlu};
  p.row_capacity = 8;  // one token, k = 8
  EXPECT_EQ(ResolveGroupedGemmTile(p), GroupedGemmTile::kM16);
  p.row_capacity = 512;  // 64 decode tokens: 4 rows per expert
  EXPECT_EQ(ResolveGroupedGemmTile(p), GroupedGemmTile::kM16);
  p.row_capacity = 4096;  // 32 rows per expert
  EXPECT_EQ(ResolveGroupedGemmTile(p), GroupedGemmTile::kM64);
  p.row_capacity = 32768;
  EXPECT_EQ(ResolveGroupedGemmTile(p), GroupedGemmTile::kM128);
  p.tile = GroupedGemmTile::kM64;
  EXPECT_EQ(ResolveGroupedGemmTile(p), GroupedGemmTile::kM64);
}

TEST(MoeIndexMathTest, GroupedGemmCanImplementChecksShapes) {
  GroupedGemmProblem p{.num_experts = 8,
                       .row_capacity = 16,
                       .n = 28672,
                       .k = 4096,
                       .epilogue = GroupedGemmEpilogue::kSwiGlu};
  EXPECT_TRUE(GroupedGemmCanImplement(p));
  EXPECT_EQ(GroupedGemmOutputCols(p), 14336);
  p.n = 24;  // 2F = 24: F = 12 is not a multiple of the interleave
  EXPECT_FALSE(GroupedGemmCanImplement(p));
  p.epilogue = GroupedGemmEpilogue::kNone;
  EXPECT_TRUE(GroupedGemmCanImplement(p));
  p.k = 1001;
  EXPECT_FALSE(GroupedGemmCanImplement(p));
  p.k = 1000;  // 16-byte rows, k tail inside a tile: fine
  EXPECT_TRUE(GroupedGemmCanImplement(p));
  p.lda = 1004;
  EXPECT_FALSE(GroupedGemmCanImplement(p));
  p.lda = 1008;
  EXPECT_TRUE(GroupedGemmCanImplement(p));
  p.num_experts = kGroupedGemmMaxExperts + 1;
  EXPECT_FALSE(GroupedGemmCanImplement(p));
}

TEST(MoeIndexMathTest, PermuteWorkspaceCoversChunkHistograms) {
  PermuteProblem p{.num_tokens = 4096, .top_k = 8, .num_experts = 128, .row_bytes = 4096};
  EXPECT_TRUE(PermuteCanImplement(p));
  EXPECT_GE(PermuteWorkspaceSize(p), static_cast<size_t>(PermuteNumChunks(4096 * 8) * 128 * 4));
  p.num_tokens = 0;
  EXPECT_TRUE(PermuteCanImplement(p));
  p.num_experts = kPermuteMaxExperts + 1;
  EXPECT_FALSE(PermuteCanImplement(p));
}

}  // namespace
}  // namespace moe::cuda
