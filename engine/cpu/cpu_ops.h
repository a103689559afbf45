// The row-wise ops of the optimized CPU backend that are cheap next to the GEMMs: norms, RoPE,
// routing, permute/combine, copies. Each works on a row range, so the backend can spread rows
// over threads; each row is computed exactly as the naive reference computes it (same order of
// F32 operations, same libm calls), so these ops match the reference bit for bit and are batch
// invariant by construction. Compiled for the baseline ISA; the vectorizer may work across a
// row's columns, which never changes an element's arithmetic.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor_view.h"
#include "engine/backend.h"

namespace moe::engine::cpu::ops {

// RmsNorm (+ fused residual add) of rows [begin, end). `scratch` holds kRmsNormScratchRows * H
// floats.
inline constexpr int kRmsNormScratchRows = 9;
void RmsNormRows(const RmsNormArgs& args, int64_t begin, int64_t end, float* scratch);

// cos/sin of NeoX RoPE for positions [0, max_positions): table[p][i] = (cos, sin) of
// p * inv_freq[i], computed as the reference does (float angle, double cos/sin).
class RopeTable {
 public:
  // Sizes the storage once (no allocation afterwards).
  void Reserve(int max_positions, int head_dim);
  // Fills the table for (head_dim, theta) unless it already holds it.
  void Prepare(int head_dim, float theta);
  // (cos, sin) pairs [head_dim / 2] of `position`, or null when outside the table.
  const float* Row(int32_t position) const;
  int head_dim() const { return head_dim_; }
  float theta() const { return theta_; }

 private:
  std::vector<float> table_;  // [max_positions][head_dim / 2][2]
  std::vector<float> inv_freq_;
  int max_positions_ = 0;
  int head_dim_ = 0;
  float theta_ = 0.f;
};

// QkNormRope of tokens [begin, end). `scratch` holds max(q cols, k cols) + head_dim floats.
void QkNormRopeRows(const QkNormRopeArgs& args, const RopeTable& rope, int64_t begin, int64_t end,
                    float* scratch);

// RouterTopK of tokens [begin, end). `scratch` holds 3 * num_experts floats.
void RouterTopKRows(const RouterTopKArgs& args, int64_t begin, int64_t end, float* scratch);

// Permute in two phases: the counting sort and row maps (sequential, O(T k + E)); then the row
// copies, which may be spread over threads. `cursor` holds num_experts ints.
void PermutePlan(const PermuteArgs& args, int32_t* cursor);
void PermuteCopyRows(const PermuteArgs& args, int64_t token_begin, int64_t token_end);

// UnpermuteCombine of tokens [begin, end). `scratch` holds 2 * H floats.
void CombineRows(const UnpermuteCombineArgs& args, int64_t begin, int64_t end, float* scratch);

void EmbedRows(const EmbedArgs& args, TensorView table, int64_t begin, int64_t end);
void GatherRows(const GatherRowsArgs& args, int64_t begin, int64_t end);
void KvWriteRows(const KvWriteArgs& args, int64_t begin, int64_t end);

// Copies row `src_row` of `src` into row `dst_row` of `dst`, converting the dtype.
void ConvertRow(const TensorView& src, int64_t src_row, const TensorView& dst, int64_t dst_row);

}  // namespace moe::engine::cpu::ops
