// Added tokens (tokenizer.json `added_tokens`): strings such as <|im_start|> that are matched in
// the text before pre-tokenization and become one id each. Matching follows Hugging Face's
// AddedVocabulary: tokens with normalized=false are found in the raw text, tokens with
// normalized=true in the normalized pieces between them; the leftmost match wins, the longest
// at that position; single_word rejects a match inside a word; lstrip/rstrip absorb adjacent
// whitespace into the token. Special tokens can be left unmatched (split_special_tokens).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/status.h"
#include "model/tokenizer_json_field.h"
#include "model/unicode_normalizer.h"

namespace moe::model {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

// Parses one added-token object (tokenizer.json `added_tokens[i]` or tokenizer_config.json
// `added_tokens_decoder.<id>`, which carries the id as its key: pass it as `id`).
StatusOr<AddedToken> ParseAddedToken(const JsonField& field, std::optional<int32_t> id);

// A piece of text: an added token (id >= 0) or plain text (id == -1), as a byte range.
struct TextSegment {
  size_t begin;
  size_t end;
  int32_t id;
};

class AddedTokens {
 public:
  AddedTokens() = default;
  // `normalizer` is the tokenizer's: normalized tokens are matched in their normalized form.
  AddedTokens(std::vector<AddedToken> tokens, const Normalizer& normalizer);

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  const AddedToken* Find(int32_t id) const;
  const AddedToken* Find(std::string_view content) const;
  bool has_normalized() const { return !normalized_.empty(); }

  // Splits valid UTF-8 `text` into segments covering it (plain text segments may be empty only
  // when `text` is). `normalized` selects which set of tokens is matched.
  void Split(std::string_view text, bool normalized, bool match_special,
             std::vector<TextSegment>* out) const;

 private:
  // A byte trie over token contents, walked from each candidate start for the longest match.
  struct Matcher {
    std::vector<int32_t> node_token;                   // [nodes]: token index ending here or -1
    absl::flat_hash_map<uint32_t, uint32_t> children;  // (node << 8 | byte) -> child node
    bool first_byte[256] = {};
    int only_first_byte = -1;  // the first byte of every token when they share one, else -1
    size_t num_tokens = 0;
    bool empty() const { return node_token.size() <= 1; }
    void Add(std::string_view content, int32_t token_index);
    // The longest token starting at text[pos]: its length, or 0 with *token_index = -1.
    size_t LongestAt(std::string_view text, size_t pos, int32_t* token_index) const;
  };

  std::vector<AddedToken> tokens_;
  absl::flat_hash_map<int32_t, size_t> by_id_;
  absl::flat_hash_map<std::string, size_t> by_content_;
  Matcher raw_;
  Matcher normalized_;
};

}  // namespace moe::model
