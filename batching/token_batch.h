// TokenBatch: one forward step's ragged batch, as plain host data. Each sequence contributes a
// contiguous range of query tokens at given positions; its keys/values live in paged KV blocks
// named by its block table. Prefill chunks, decode tokens and speculative verification are all
// the same thing here: a range of positions to compute.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"

namespace moe::batching {

struct TokenBatch {
  int block_size = 16;
  std::vector<int32_t> token_ids;       // [T]
  std::vector<int32_t> positions;       // [T]
  std::vector<int64_t> slot_mapping;    // [T]; KV slot = block * block_size + position % block_size
  std::vector<int32_t> query_start{0};  // [S + 1]; sequence s owns tokens [query_start[s], [s+1])
  std::vector<std::vector<int32_t>> block_tables;  // [S][blocks of that sequence]
  std::vector<int32_t> logits_indices;             // ascending token rows whose logits are wanted

  int num_tokens() const { return static_cast<int>(token_ids.size()); }
  int num_seqs() const { return static_cast<int>(query_start.size()) - 1; }
  int max_blocks_per_seq() const;

  // Appends a sequence's tokens at positions [start_position, start_position + tokens.size()),
  // whose KV blocks are `block_table` (enough blocks to hold every position up to the last one).
  // Logits are wanted for the tokens at index >= `logits_from` within `tokens`
  // (tokens.size() - 1: only the last; tokens.size(): none).
  Status AddSequence(std::span<const int32_t> tokens, int32_t start_position,
                     std::span<const int32_t> block_table, int logits_from);

  // Checks internal consistency (sizes, monotone ranges, slots inside the block tables).
  Status Validate() const;

  void Clear();
};

}  // namespace moe::batching
