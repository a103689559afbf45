// The tokenizer.json BPE `model`: vocabulary, merges by rank, unk/byte-fallback handling. A word
// starts as one symbol per character and the adjacent pair with the lowest merge rank (leftmost
// on ties) is merged until no pair has a rank, exactly as Hugging Face's Word::merge_all does.
//
// Byte-level words (see PreTokenizer::byte_level) arrive as raw bytes: each byte starts as the id
// of its mapped character and merges run on ids, so the mapped text is never materialised. Merges
// are a hash map from an id pair to (rank, merged id); words are cached.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/status.h"
#include "model/bpe_cache.h"
#include "model/tokenizer_json_field.h"

namespace moe::model {

class BpeModel {
 public:
  // Parses the tokenizer.json `model` object; `byte_level_input` says whether words will be raw
  // bytes (the pre-tokenizer ends with ByteLevel). Errors name the offending key.
  static StatusOr<std::unique_ptr<BpeModel>> FromJson(const JsonField& field,
                                                      bool byte_level_input);

  // Appends the ids of non-empty pre-tokenized words, in order. Thread-safe. A batch of words
  // is looked up in the cache together, so that their memory accesses overlap.
  void Tokenize(std::span<const std::string_view> words, std::vector<int32_t>* ids) const;
  void Tokenize(std::string_view word, std::vector<int32_t>* ids) const {
    Tokenize(std::span<const std::string_view>(&word, 1), ids);
  }

  // Vocabulary lookups in model space (byte-level tokens in their mapped form).
  std::optional<int32_t> TokenToId(std::string_view token) const;
  // The token of `id`, or nullptr when the vocabulary has no such id.
  const std::string* IdToToken(int32_t id) const;
  // The number of vocabulary entries (Hugging Face's get_vocab_size).
  size_t vocab_entries() const { return vocab_.size(); }
  // One more than the largest id in the vocabulary.
  int32_t id_limit() const { return static_cast<int32_t>(id_to_token_.size()); }
  size_t num_merges() const { return merges_.size(); }

 private:
  struct Merge {
    uint32_t rank;
    int32_t id;
  };
  static constexpr uint32_t kNoRank = UINT32_MAX;

  BpeModel() : cache_(kCacheWords) {}
  static constexpr size_t kCacheWords = 1 << 18;

  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  Merge FindMerge(int32_t a, int32_t b) const {
    auto it = merges_.find(PairKey(a, b));
    return it == merges_.end() ? Merge{kNoRank, -1} : it->second;
  }

  // One word, raw bytes (raw_bytes_) with its cache hash when cacheable, or model-space text.
  void TokenizeRaw(std::string_view word, uint64_t hash, std::vector<int32_t>* ids) const;
  void TokenizeMapped(std::string_view word, std::vector<int32_t>* ids) const;
  // Initial symbols of a model-space word (prefix/suffix, unk and byte fallback applied).
  void InitialSymbols(std::string_view word, std::vector<int32_t>* symbols) const;
  // Merges `symbols` in place until no adjacent pair has a rank.
  void MergeSymbols(std::vector<int32_t>* symbols) const;
  void MergeSmall(std::vector<int32_t>* symbols) const;
  void MergeLarge(std::vector<int32_t>* symbols) const;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;  // [id_limit]; empty string for unused ids
  std::vector<bool> has_id_;              // [id_limit]
  absl::flat_hash_map<uint64_t, Merge> merges_;

  bool byte_level_input_ = false;
  // Raw-byte fast path: the id of each byte's mapped character, usable when every byte has one
  // and no subword prefix/suffix is configured.
  bool raw_bytes_ = false;
  int32_t byte_ids_[256] = {};

  std::optional<int32_t> unk_id_;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;

  mutable BpeCache cache_;
};

}  // namespace moe::model
