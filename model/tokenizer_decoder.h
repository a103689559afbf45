// The tokenizer.json `decoder`: ids back to bytes. Supported: ByteLevel (each token's mapped
// characters back to their bytes; a token holding any character outside the mapping, such as an
// added token in plain UTF-8, contributes its own bytes), Sequence of ByteLevel, and null
// (tokens joined with spaces, as Hugging Face does without a decoder). Each id's bytes are
// computed once at load; decoding concatenates them and repairs invalid UTF-8 like
// String::from_utf8_lossy.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model/tokenizer_json_field.h"

namespace moe::model {

class TokenDecoder {
 public:
  enum class Kind { kByteLevel, kJoinWithSpace };

  // Parses the decoder object (or null) and precomputes the bytes of every id in
  // [0, tokens.size()); `tokens[id]` is the token string (nullptr for ids without a token).
  static StatusOr<TokenDecoder> FromJson(const JsonField& field,
                                         const std::vector<const std::string*>& tokens);

  Kind kind() const { return kind_; }
  // Whether `id` has a token (ids without one decode to nothing, as in Hugging Face).
  bool HasToken(int32_t id) const {
    return id >= 0 && static_cast<size_t>(id) + 1 < offsets_.size() && present_[id];
  }
  // The bytes of `id` (not necessarily valid UTF-8 on their own). Requires HasToken(id).
  std::string_view TokenBytes(int32_t id) const {
    return std::string_view(bytes_).substr(offsets_[id], offsets_[id + 1] - offsets_[id]);
  }

 private:
  Kind kind_ = Kind::kByteLevel;
  std::string bytes_;             // all ids' bytes, concatenated
  std::vector<uint32_t> offsets_;  // [num_ids + 1]
  std::vector<bool> present_;      // [num_ids]
};

}  // namespace moe::model
