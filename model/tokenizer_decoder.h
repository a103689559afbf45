// The tokenizer.json `decoder`: ids back to bytes. Supported: ByteLevel (each token's mapped
// characters back to their bytes; a token holding any character outside the mapping, such as an
// added token in plain UTF-8, contributes its own bytes), Sequence of ByteLevel, and null
// (tokens joined with spaces, as Hugging Face does without a decoder). Each id's bytes are
// computed once at load into a 16-byte entry (short tokens inline), so decoding is one table read
// and one copy per id; the caller repairs the bytes into UTF-8 like String::from_utf8_lossy.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model/tokenizer_json_field.h"

namespace moe::model {

class TokenDecoder {
 public:
  enum class Kind { kByteLevel, kJoinWithSpace };

  // Parses the decoder object (or null) and precomputes every id in [0, tokens.size()):
  // `tokens[id]` is the token string (nullptr for ids without a token, which decode to nothing,
  // as in Hugging Face) and `special[id]` whether skip_special_tokens drops it.
  static StatusOr<TokenDecoder> FromJson(const JsonField& field,
                                         const std::vector<const std::string*>& tokens,
                                         const std::vector<bool>& special);

  Kind kind() const { return kind_; }
  int32_t num_ids() const { return static_cast<int32_t>(entries_.size()); }
  bool IsSpecial(int32_t id) const { return InRange(id) && (entries_[id].flags & kSpecial); }

  // Appends the bytes of `ids` (tokens joined as the decoder kind says), before UTF-8 repair.
  void AppendBytes(std::span<const int32_t> ids, bool skip_special_tokens,
                   std::string* bytes) const;
  // The same one id at a time: `*started` tracks whether an earlier id contributed, for the
  // decoder that joins tokens with spaces.
  void AppendBytes(int32_t id, bool skip_special_tokens, bool* started, std::string* bytes) const;

 private:
  static constexpr uint8_t kHasToken = 1;
  static constexpr uint8_t kSpecial = 2;
  static constexpr size_t kInlineBytes = 8;
  struct Entry {
    uint32_t offset;  // into bytes_, when length > kInlineBytes
    uint16_t length;
    uint8_t flags;  // kHasToken | kSpecial
    uint8_t unused;
    char inline_bytes[kInlineBytes];
  };

  bool InRange(int32_t id) const { return static_cast<uint32_t>(id) < entries_.size(); }
  // Whether `id` contributes: it has a token and is not a skipped special token.
  bool Keeps(int32_t id, uint8_t skip_mask) const {
    return InRange(id) && (entries_[id].flags & kHasToken) && !(entries_[id].flags & skip_mask);
  }
  std::string_view Bytes(const Entry& e) const {
    return e.length <= kInlineBytes ? std::string_view(e.inline_bytes, e.length)
                                    : std::string_view(bytes_).substr(e.offset, e.length);
  }

  Kind kind_ = Kind::kByteLevel;
  std::vector<Entry> entries_;  // [num_ids]
  std::string bytes_;           // the bytes of tokens longer than kInlineBytes
};

}  // namespace moe::model
