// GPU permute against the CPU reference: offsets, both row maps and the permuted rows must match
// exactly (no padding), over T x E x k with dropped slots, odd row sizes and strides; padded
// segments keep the same order with zeroed pad rows. Label `gpu`; skips without a GPU.
#include "cuda/kernels/permute.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/tensor_view.h"
#include "cuda/kernels/moe_index_math.h"
#include "engine/cpu/reference_ops.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/cuda/moe_kernel_cases.h"

namespace moe::cuda {
namespace {

using testing::DeviceBuffer;

struct PermuteCase {
  int tokens;
  int experts;
  int top_k;
  double drop;
  int64_t row_bytes;
  int64_t x_stride_bytes;  // 0 = row_bytes
  int row_alignment;
  bool copy_rows;
};

std::string Describe(const PermuteCase& c) {
  return "T=" + std::to_string(c.tokens) + " E=" + std::to_string(c.experts) +
         " k=" + std::to_string(c.top_k) + " drop=" + std::to_string(c.drop) +
         " row_bytes=" + std::to_string(c.row_bytes) +
         " x_stride=" + std::to_string(c.x_stride_bytes) +
         " align=" + std::to_string(c.row_alignment) + (c.copy_rows ? "" : " maps-only");
}

struct GpuPermuteResult {
  std::vector<int32_t> offsets;
  std::vector<int32_t> row_to_token;
  std::vector<int32_t> slot_to_row;
  std::vector<uint8_t> rows;
};

GpuPermuteResult RunGpu(const PermuteCase& c, const std::vector<int32_t>& ids,
                        const std::vector<uint8_t>& x) {
  PermuteProblem problem{.num_tokens = c.tokens,
                         .top_k = c.top_k,
                         .num_experts = c.experts,
                         .row_alignment = c.row_alignment,
                         .row_bytes = c.row_bytes,
                         .x_stride_bytes = c.x_stride_bytes};
  EXPECT_TRUE(PermuteCanImplement(problem));
  const int64_t capacity = PermuteRowCapacity(c.tokens, c.top_k, c.experts, c.row_alignment);
  DeviceBuffer<uint8_t> d_x(x);
  DeviceBuffer<int32_t> d_ids(ids);
  DeviceBuffer<uint8_t> d_rows(capacity * c.row_bytes);
  DeviceBuffer<int32_t> d_offsets(c.experts + 1);
  DeviceBuffer<int32_t> d_row_to_token(capacity);
  DeviceBuffer<int32_t> d_slot_to_row(ids.size());
  d_rows.FillBytes(0xab);
  d_offsets.FillBytes(0xab);
  d_row_to_token.FillBytes(0xab);
  d_slot_to_row.FillBytes(0xab);
  const size_t ws_bytes = PermuteWorkspaceSize(problem);
  DeviceBuffer<uint8_t> d_ws(ws_bytes);
  d_ws.FillBytes(0xcd);  // the kernels must not rely on zeroed scratch
  PermuteBuffers buffers{.x = d_x.get(),
                         .expert_ids = d_ids.get(),
                         .rows = c.copy_rows ? d_rows.get() : nullptr,
                         .expert_offsets = d_offsets.get(),
                         .row_to_token = d_row_to_token.get(),
                         .slot_to_row = d_slot_to_row.get()};
  EXPECT_EQ(Permute(problem, buffers, d_ws.get(), ws_bytes, nullptr), cudaSuccess);
  MOE_CUDA_CHECK(cudaDeviceSynchronize());
  return {d_offsets.Download(), d_row_to_token.Download(), d_slot_to_row.Download(),
          d_rows.Download()};
}

void RunCase(const PermuteCase& c, uint64_t seed) {
  SCOPED_TRACE(Describe(c));
  const std::vector<int32_t> ids =
      testing::RandomRouting(c.tokens, c.top_k, c.experts, c.drop, seed);
  const int64_t x_stride = c.x_stride_bytes == 0 ? c.row_bytes : c.x_stride_bytes;
  std::vector<uint8_t> x(static_cast<size_t>(c.tokens) * x_stride);
  testing::FastRandom rng(seed);
  for (uint8_t& b : x) b = static_cast<uint8_t>(rng.Next());

  const GpuPermuteResult got = RunGpu(c, ids, x);

  // Reference maps (unpadded). The reference copies typed rows only, so the permuted bytes are
  // checked below through row_to_token against x itself.
  const int64_t slots = static_cast<int64_t>(ids.size());
  std::vector<int32_t> want_offsets(c.experts + 1), want_row_to_token(std::max<int64_t>(slots, 1)),
      want_slot_to_row(std::max<int64_t>(slots, 1));
  std::vector<float> dummy_x(c.tokens), dummy_rows(std::max<int64_t>(slots, 1));
  engine::PermuteArgs ref;
  ref.x = TensorView::Contiguous(dummy_x.data(), DType::kF32, c.tokens, 1);
  ref.expert_ids = ids.data();
  ref.num_tokens = c.tokens;
  ref.top_k = c.top_k;
  ref.num_experts = c.experts;
  ref.rows = TensorView::Contiguous(dummy_rows.data(), DType::kF32, slots, 1);
  ref.expert_offsets = want_offsets.data();
  ref.row_to_token = want_row_to_token.data();
  ref.slot_to_row = want_slot_to_row.data();
  engine::cpu::ref::Permute(ref);

  if (c.row_alignment == 1) {
    ASSERT_EQ(got.offsets, want_offsets);
    const int32_t r = want_offsets.back();
    for (int32_t i = 0; i < r; ++i) ASSERT_EQ(got.row_to_token[i], want_row_to_token[i]) << i;
    for (int64_t s = 0; s < slots; ++s) ASSERT_EQ(got.slot_to_row[s], want_slot_to_row[s]) << s;
  } else {
    ASSERT_EQ(got.offsets[0], 0);
    for (int e = 0; e < c.experts; ++e) {
      const int32_t count = want_offsets[e + 1] - want_offsets[e];
      ASSERT_EQ(got.offsets[e] % c.row_alignment, 0);
      ASSERT_EQ(got.offsets[e + 1] - got.offsets[e], SegmentRows(count, c.row_alignment));
      for (int32_t i = 0; i < count; ++i) {
        ASSERT_EQ(got.row_to_token[got.offsets[e] + i], want_row_to_token[want_offsets[e] + i]);
      }
      for (int32_t r = got.offsets[e] + count; r < got.offsets[e + 1]; ++r) {
        ASSERT_EQ(got.row_to_token[r], -1) << "pad row " << r;
      }
    }
    for (int64_t s = 0; s < slots; ++s) {
      if (want_slot_to_row[s] < 0) {
        ASSERT_EQ(got.slot_to_row[s], -1);
      } else {
        ASSERT_EQ(got.row_to_token[got.slot_to_row[s]], static_cast<int32_t>(s / c.top_k));
      }
    }
  }
  if (!c.copy_rows) {
    for (uint8_t b : got.rows) ASSERT_EQ(b, 0xab) << "rows written in maps-only mode";
    return;
  }
  const int32_t num_rows = got.offsets.back();
  for (int32_t r = 0; r < num_rows; ++r) {
    const int32_t token = got.row_to_token[r];
    const uint8_t* row = got.rows.data() + static_cast<size_t>(r) * c.row_bytes;
    if (token < 0) {
      for (int64_t i = 0; i < c.row_bytes; ++i) ASSERT_EQ(row[i], 0) << "pad row " << r;
    } else {
      ASSERT_EQ(std::memcmp(row, x.data() + static_cast<size_t>(token) * x_stride, c.row_bytes), 0)
          << "row " << r;
    }
  }
  const int64_t capacity = PermuteRowCapacity(c.tokens, c.top_k, c.experts, c.row_alignment);
  for (int64_t i = static_cast<int64_t>(num_rows) * c.row_bytes; i < capacity * c.row_bytes; ++i) {
    ASSERT_EQ(got.rows[i], 0xab) << "byte past R written";
  }
}

TEST(PermuteGpuTest, MatchesReferenceOverShapeTable) {
  MOE_SKIP_IF_NO_GPU();
  uint64_t seed = 1;
  for (int tokens : testing::kTokenCounts) {
    for (int experts : testing::kExpertCounts) {
      for (int top_k : testing::kTopKs) {
        if (top_k > experts) continue;
        for (double drop : {0.0, 0.25}) {
          RunCase({tokens, experts, top_k, drop, 2 * testing::kBenchPreset.hidden, 0, 1, true},
                  seed++);
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

TEST(PermuteGpuTest, RowSizesStridesAndMapsOnly) {
  MOE_SKIP_IF_NO_GPU();
  const int64_t qwen = 2 * testing::kQwen3_30B_A3B.hidden;
  const int64_t mixtral = 2 * testing::kMixtral8x7B.hidden;
  RunCase({512, 128, 8, 0.1, qwen, 0, 1, true}, 21);
  RunCase({64, 8, 2, 0.0, mixtral, 0, 1, true}, 22);
  RunCase({300, 64, 8, 0.1, 2 * 1000, 2 * 1024, 1, true}, 23);  // 16-byte rows, strided x
  RunCase({300, 64, 8, 0.1, 4 * 1001, 0, 1, true}, 24);         // F32 odd: 4-byte access
  RunCase({300, 64, 8, 0.1, 2 * 7, 0, 1, true}, 25);            // 2-byte access
  RunCase({37, 8, 2, 0.0, 3, 5, 1, true}, 26);                  // 1-byte access
  RunCase({4096, 128, 8, 0.0, qwen, 0, 1, false}, 27);          // maps only
  RunCase({20000, 256, 8, 0.1, 64, 0, 1, true}, 28);            // many chunks, E = 256
  RunCase({100, 1024, 8, 0.0, 64, 0, 1, true}, 29);             // E at the limit
}

TEST(PermuteGpuTest, PaddedSegments) {
  MOE_SKIP_IF_NO_GPU();
  uint64_t seed = 40;
  for (int align : {16, 64, 128}) {
    for (int tokens : {0, 1, 7, 512, 4096}) {
      RunCase({tokens, 64, 8, 0.2, 2 * 1024, 0, align, true}, seed++);
      if (HasFatalFailure()) return;
    }
  }
}

TEST(PermuteGpuTest, RejectsUnsupportedProblems) {
  PermuteProblem p{.num_tokens = 4, .top_k = 2, .num_experts = 2000, .row_bytes = 16};
  EXPECT_EQ(Permute(p, {}, nullptr, 0, nullptr), cudaErrorInvalidValue);
  p.num_experts = 8;
  EXPECT_EQ(Permute(p, {}, nullptr, 0, nullptr), cudaErrorInvalidValue) << "null buffers";
}

}  // namespace
}  // namespace moe::cuda
