#include "batching/token_batch.h"

#include <algorithm>

namespace moe::batching {

int TokenBatch::max_blocks_per_seq() const {
  size_t width = 0;
  for (const auto& t : block_tables) width = std::max(width, t.size());
  return static_cast<int>(width);
}

Status TokenBatch::AddSequence(std::span<const int32_t> tokens, int32_t start_position,
                               std::span<const int32_t> block_table, int logits_from) {
  if (start_position < 0) return InvalidArgument("start_position must be >= 0");
  const int64_t end = static_cast<int64_t>(start_position) + static_cast<int64_t>(tokens.size());
  if (end > static_cast<int64_t>(block_table.size()) * block_size) {
    return InvalidArgument("a block table of ", block_table.size(), " blocks cannot hold position ",
                           end - 1);
  }
  const int base = num_tokens();
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t pos = start_position + static_cast<int32_t>(i);
    token_ids.push_back(tokens[i]);
    positions.push_back(pos);
    slot_mapping.push_back(static_cast<int64_t>(block_table[pos / block_size]) * block_size +
                           pos % block_size);
    if (static_cast<int64_t>(i) >= logits_from) {
      logits_indices.push_back(base + static_cast<int32_t>(i));
    }
  }
  query_start.push_back(num_tokens());
  block_tables.emplace_back(block_table.begin(), block_table.end());
  return OkStatus();
}

Status TokenBatch::Validate() const {
  const int t = num_tokens();
  if (static_cast<int>(positions.size()) != t || static_cast<int>(slot_mapping.size()) != t) {
    return Internal("TokenBatch: token_ids, positions and slot_mapping differ in size");
  }
  if (query_start.empty() || query_start.front() != 0 || query_start.back() != t) {
    return Internal("TokenBatch: query_start must run from 0 to the token count");
  }
  if (static_cast<int>(block_tables.size()) != num_seqs()) {
    return Internal("TokenBatch: one block table per sequence");
  }
  for (int s = 0; s < num_seqs(); ++s) {
    if (query_start[s + 1] < query_start[s]) return Internal("TokenBatch: query_start decreases");
    for (int i = query_start[s]; i < query_start[s + 1]; ++i) {
      const int64_t block = positions[i] / block_size;
      if (positions[i] < 0 || block >= static_cast<int64_t>(block_tables[s].size()) ||
          block_tables[s][block] < 0) {
        return Internal("TokenBatch: position ", positions[i], " of sequence ", s,
                        " has no KV block");
      }
    }
  }
  for (size_t i = 0; i < logits_indices.size(); ++i) {
    if (logits_indices[i] < 0 || logits_indices[i] >= t ||
        (i > 0 && logits_indices[i] <= logits_indices[i - 1])) {
      return Internal("TokenBatch: logits_indices must be ascending token rows");
    }
  }
  return OkStatus();
}

void TokenBatch::Clear() {
  token_ids.clear();
  positions.clear();
  slot_mapping.clear();
  query_start.assign(1, 0);
  block_tables.clear();
  logits_indices.clear();
}

}  // namespace moe::batching
