// Index math shared by the MoE kernels and their host code: expert segment sizes and padding, the
// permute work decomposition, grouped-GEMM tile shapes and tile scheduling over ragged expert
// segments, the shared-memory swizzle, and the gate/up weight interleave. Everything here is a
// __host__ __device__ function of plain integers and pointers, so CPU tests
// (tests/cuda/moe_index_math_test.cc) exercise exactly the code the kernels run.
//
// Host-includable: no CUDA headers.
#pragma once

#include <cstdint>

#include "core/bf16.h"  // MOE_HOST_DEVICE

namespace moe::cuda {

MOE_HOST_DEVICE constexpr int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
MOE_HOST_DEVICE constexpr int64_t RoundUp(int64_t a, int64_t b) { return CeilDiv(a, b) * b; }
MOE_HOST_DEVICE constexpr int64_t MinI64(int64_t a, int64_t b) { return a < b ? a : b; }

// ---------------------------------------------------------------------------------------------
// Expert segments.
//
// Permute writes the rows of expert e to [expert_offsets[e], expert_offsets[e + 1]). Without
// padding (row_alignment 1, the Backend contract's layout) a segment holds exactly the expert's
// rows. With padding each segment is rounded up to a multiple of row_alignment; the pad rows sit
// at the end of the segment, have row_to_token -1 and are zero-filled.

// Rows the segment of an expert with `count` routed rows occupies.
MOE_HOST_DEVICE constexpr int64_t SegmentRows(int64_t count, int row_alignment) {
  return row_alignment <= 1 ? count : RoundUp(count, row_alignment);
}

// The most rows a permute of num_tokens x top_k slots can produce (padding included): every
// non-empty expert adds at most row_alignment - 1 pad rows, and at most min(E, slots) experts are
// non-empty. Size `rows`, `row_to_token` and the GEMM buffers with this.
MOE_HOST_DEVICE constexpr int64_t PermuteRowCapacity(int64_t num_tokens, int top_k, int num_experts,
                                                     int row_alignment) {
  const int64_t slots = num_tokens * top_k;
  if (row_alignment <= 1) return slots;
  return slots + MinI64(num_experts, slots) * (row_alignment - 1);
}

// ---------------------------------------------------------------------------------------------
// Permute decomposition: a stable counting sort over the num_tokens * top_k routing slots.
//
//   chunk c (one CTA)  = slots [c * kPermuteSlotsPerChunk, ...)
//   warp w of a chunk  = slots [chunk begin + w * kPermuteSlotsPerWarp, ...)
//   round r of a warp  = 32 consecutive slots, one per lane
//
// Rank of a slot inside its expert = rows of that expert in earlier chunks, then in earlier warps
// of its chunk, then in earlier rounds of its warp, then in lower lanes of its round. Every level
// is ordered by slot index, so the sort is stable: within an expert rows are in ascending
// (token, slot) order, exactly as the CPU reference.
inline constexpr int kPermuteWarpsPerChunk = 8;
inline constexpr int kPermuteRoundsPerWarp = 8;
inline constexpr int kPermuteSlotsPerWarp = 32 * kPermuteRoundsPerWarp;
inline constexpr int kPermuteSlotsPerChunk = kPermuteWarpsPerChunk * kPermuteSlotsPerWarp;
// The per-chunk scan is done by one CTA with a thread per expert.
inline constexpr int kPermuteMaxExperts = 1024;

MOE_HOST_DEVICE constexpr int64_t PermuteNumChunks(int64_t num_slots) {
  return CeilDiv(num_slots, kPermuteSlotsPerChunk);
}

// Slot index range [begin, end) of (chunk, warp); empty when past num_slots.
struct SlotRange {
  int64_t begin;
  int64_t end;
};
MOE_HOST_DEVICE constexpr SlotRange PermuteWarpSlots(int64_t num_slots, int64_t chunk, int warp) {
  const int64_t begin =
      chunk * kPermuteSlotsPerChunk + static_cast<int64_t>(warp) * kPermuteSlotsPerWarp;
  const int64_t end = MinI64(begin + kPermuteSlotsPerWarp, num_slots);
  return SlotRange{begin, end < begin ? begin : end};
}

// An expert id that routes nowhere: -1 (dynamic routing / null expert) or out of range.
MOE_HOST_DEVICE constexpr bool IsRoutedExpert(int32_t expert, int num_experts) {
  return expert >= 0 && expert < num_experts;
}

// ---------------------------------------------------------------------------------------------
// Grouped GEMM tiles.
//
// out[r, :] = A[r, :] * W_e^T for every row r of expert e's segment. The work is cut into tiles of
// block_m rows (never crossing a segment boundary) by block_n output columns. Tiles are numbered
//
//   tile = m_tile * num_n_tiles + n_tile,   m_tile in [0, m_tile_prefix[E]),
//
// where m_tile_prefix is the exclusive prefix sum over experts of CeilDiv(segment rows, block_m).
// n is the fastest index, so CTAs running together share one m-tile of A and sweep one expert's
// weights. The prefix lives on the device (computed by each CTA from expert_offsets): the host
// never needs the row counts.

// Tile shape of one kernel configuration.
struct GemmTileShape {
  int block_m;
  int block_n;
  int block_k;
  int warps_m;
  int warps_n;
  int stages;  // cp.async pipeline depth

  MOE_HOST_DEVICE constexpr int Threads() const { return 32 * warps_m * warps_n; }
  MOE_HOST_DEVICE constexpr int WarpTileM() const { return block_m / warps_m; }
  MOE_HOST_DEVICE constexpr int WarpTileN() const { return block_n / warps_n; }
  // Dynamic shared memory for the bf16 A and B stages.
  MOE_HOST_DEVICE constexpr int64_t StageBytes() const {
    return static_cast<int64_t>(block_m + block_n) * block_k * 2;
  }
  MOE_HOST_DEVICE constexpr int64_t PipelineBytes() const { return StageBytes() * stages; }
};

// Decode regime: a handful of rows per expert; weight streaming bound. One m16 tile, narrow N so
// that even a single token's 8 experts spread over every SM, deep pipeline for bytes in flight.
inline constexpr GemmTileShape kTileM16{16, 64, 64, 1, 4, 6};
// Mid-size batches (tens of rows per expert).
inline constexpr GemmTileShape kTileM64{64, 128, 32, 2, 2, 4};
// Prefill regime: compute bound, 128x128 CTA tile, 8 warps of 64x32.
inline constexpr GemmTileShape kTileM128{128, 128, 32, 2, 4, 4};

// Experts a grouped GEMM supports: the schedule of every expert is kept in shared memory.
inline constexpr int kGroupedGemmMaxExperts = 1024;

// Shared memory for the per-CTA schedule: expert_offsets and m_tile_prefix, [E + 1] each.
MOE_HOST_DEVICE constexpr int64_t ScheduleSmemBytes(int num_experts) {
  return RoundUp(2 * (static_cast<int64_t>(num_experts) + 1) * 4, 16);
}

// Upper bound on sum_e CeilDiv(count_e, block_m) over all routings with sum_e count_e <= rows:
// each non-empty expert costs one tile plus one per further block_m rows, and at most
// min(E, rows) experts are non-empty. Host-computable, so the grid needs no device data.
MOE_HOST_DEVICE constexpr int64_t MaxGroupedMTiles(int64_t row_capacity, int num_experts,
                                                   int block_m) {
  if (row_capacity <= 0 || num_experts <= 0) return 0;
  const int64_t nonempty = MinI64(num_experts, row_capacity);
  return nonempty + (row_capacity - nonempty) / block_m;
}

// m-tiles of one expert segment [begin, end).
MOE_HOST_DEVICE constexpr int32_t SegmentMTiles(int32_t begin, int32_t end, int block_m) {
  return end > begin ? static_cast<int32_t>(CeilDiv(end - begin, block_m)) : 0;
}

// Host form of the per-CTA prefix: m_tile_prefix[e] = sum_{e' < e} SegmentMTiles(e'); [E + 1].
inline void ComputeMTilePrefix(const int32_t* expert_offsets, int num_experts, int block_m,
                               int32_t* m_tile_prefix) {
  m_tile_prefix[0] = 0;
  for (int e = 0; e < num_experts; ++e) {
    m_tile_prefix[e + 1] =
        m_tile_prefix[e] + SegmentMTiles(expert_offsets[e], expert_offsets[e + 1], block_m);
  }
}

// The expert owning m_tile: the largest e in [0, E) with m_tile_prefix[e] <= m_tile (experts with
// no tiles share their successor's prefix value and are skipped). Requires m_tile <
// m_tile_prefix[E].
MOE_HOST_DEVICE inline int FindExpertOfMTile(const int32_t* m_tile_prefix, int num_experts,
                                             int32_t m_tile) {
  int lo = 0;
  int hi = num_experts - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (m_tile_prefix[mid] <= m_tile) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

// One output tile: rows [row_begin, row_end) of `expert`, columns [n_begin, n_begin + block_n).
struct GroupedTile {
  int expert;
  int32_t row_begin;
  int32_t row_end;  // exclusive; row_end - row_begin in [1, block_m]
  int32_t n_begin;
};

// Decodes a tile index (< m_tile_prefix[E] * num_n_tiles). row_end is also clipped to
// row_capacity, so corrupt offsets cannot make a tile write past the output buffer.
MOE_HOST_DEVICE inline GroupedTile DecodeGroupedTile(int64_t tile, int num_n_tiles,
                                                     const int32_t* m_tile_prefix,
                                                     const int32_t* expert_offsets, int num_experts,
                                                     int block_m, int block_n,
                                                     int64_t row_capacity) {
  const int32_t m_tile = static_cast<int32_t>(tile / num_n_tiles);
  const int32_t n_tile = static_cast<int32_t>(tile % num_n_tiles);
  const int e = FindExpertOfMTile(m_tile_prefix, num_experts, m_tile);
  const int32_t row_begin = expert_offsets[e] + (m_tile - m_tile_prefix[e]) * block_m;
  int64_t row_end = MinI64(static_cast<int64_t>(row_begin) + block_m, expert_offsets[e + 1]);
  row_end = MinI64(row_end, row_capacity);
  return GroupedTile{e, row_begin, static_cast<int32_t>(row_end), n_tile * block_n};
}

// ---------------------------------------------------------------------------------------------
// Shared-memory swizzle for a tile of rows of `chunks_per_row` 16-byte chunks (2, 4 or 8, i.e.
// block_k 16, 32 or 64 bf16). The physical chunk of (row, chunk) is chunk XOR a per-row phase
// that changes every 128-byte line, so the eight 16-byte rows one ldmatrix phase reads (eight
// consecutive rows, same logical chunk) fall in eight different bank groups, as do cp.async
// writes of consecutive chunks.
MOE_HOST_DEVICE constexpr int SwizzleChunk(int row, int chunk, int chunks_per_row) {
  return chunk ^ ((row / (8 / chunks_per_row)) & (chunks_per_row - 1));
}

// Element offset of (row, 16-byte chunk) in a swizzled [rows][block_k] bf16 tile.
MOE_HOST_DEVICE constexpr int SwizzledOffset(int row, int chunk, int block_k) {
  return row * block_k + SwizzleChunk(row, chunk, block_k / 8) * 8;
}

// ---------------------------------------------------------------------------------------------
// mma.sync.m16n8k16 fragment maps (PTX ISA "Matrix Fragments for mma.m16n8k16", ldmatrix).
// The kernel addresses shared memory and places results only through these; the CPU test
// simulates ldmatrix and mma per the ISA on top of them.

struct RowChunk {
  int row;    // tile row (an A row, or a B row = output feature)
  int chunk;  // 16-byte chunk along k
};

// Address lane `lane` gives to ldmatrix.x4 for the 16x16 A sub-tile with rows [row0, row0 + 16)
// at k16 step kk. Matrices 0..3 = (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15),
// (rows 8-15, k 8-15): the order of the mma A registers a0..a3.
MOE_HOST_DEVICE constexpr RowChunk LdmatrixALane(int lane, int row0, int kk) {
  return RowChunk{row0 + (lane & 15), kk * 2 + (lane >> 4)};
}

// Address lane `lane` gives to ldmatrix.x4 for two n8 B tiles, rows [row0, row0 + 16) of the
// [n][k] weight tile, at k16 step kk. Matrices 0..3 = (n 0-7, k 0-7), (n 0-7, k 8-15),
// (n 8-15, k 0-7), (n 8-15, k 8-15): registers b0, b1 of n8 tile 0, then of n8 tile 1.
MOE_HOST_DEVICE constexpr RowChunk LdmatrixBLane(int lane, int row0, int kk) {
  return RowChunk{row0 + (lane & 7) + ((lane >> 4) << 3), kk * 2 + ((lane >> 3) & 1)};
}

// Row and column inside the m16n8 tile of accumulator register i (0..3) of `lane`.
MOE_HOST_DEVICE constexpr int AccumulatorRow(int lane, int i) {
  return (lane >> 2) + (i >= 2 ? 8 : 0);
}
MOE_HOST_DEVICE constexpr int AccumulatorCol(int lane, int i) { return 2 * (lane & 3) + (i & 1); }

// ---------------------------------------------------------------------------------------------
// Gate/up weight interleave for the fused SwiGLU GEMM.
//
// Per expert the packed matrix is [2F, H] bf16, row-major (H contiguous), built from gate [F, H]
// and up [F, H] in groups of 8 features:
//
//   packed rows 16j .. 16j+7   = gate rows 8j .. 8j+7
//   packed rows 16j+8 .. 16j+15 = up   rows 8j .. 8j+7
//
// An mma n8 tile of packed columns 16j.. is then gate and the next one is up for the same 8
// features, so every thread holds gate and up of the same (row, feature) in registers and the
// epilogue computes silu(g) * u without another pass. Requires F % 8 == 0.
inline constexpr int kGateUpInterleave = 8;

MOE_HOST_DEVICE constexpr int64_t PackedGateRow(int64_t feature) {
  return (feature / kGateUpInterleave) * (2 * kGateUpInterleave) + feature % kGateUpInterleave;
}
MOE_HOST_DEVICE constexpr int64_t PackedUpRow(int64_t feature) {
  return PackedGateRow(feature) + kGateUpInterleave;
}
// The output feature (column of h) of packed row/column p, and whether it is an up row.
MOE_HOST_DEVICE constexpr int64_t FeatureOfPackedRow(int64_t packed) {
  return (packed / (2 * kGateUpInterleave)) * kGateUpInterleave + packed % kGateUpInterleave;
}
MOE_HOST_DEVICE constexpr bool IsUpPackedRow(int64_t packed) {
  return (packed % (2 * kGateUpInterleave)) >= kGateUpInterleave;
}

// ---------------------------------------------------------------------------------------------
// Router: one warp per token, expert e held by lane e % 32 in register e / 32.
inline constexpr int kRouterMaxExperts = 256;
inline constexpr int kRouterMaxTopK = 32;  // selection j is kept by lane j

// Registers per lane for num_experts (1, 2, 4 or 8); 0 when unsupported.
MOE_HOST_DEVICE constexpr int RouterExpertsPerLane(int num_experts) {
  return num_experts <= 0     ? 0
         : num_experts <= 32  ? 1
         : num_experts <= 64  ? 2
         : num_experts <= 128 ? 4
         : num_experts <= 256 ? 8
                              : 0;
}

}  // namespace moe::cuda
