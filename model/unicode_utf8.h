// UTF-8 validation, decoding and lossy repair. The tokenizer takes text as bytes: prompts are
// validated (an error names the first bad byte), and decoded token bytes are repaired exactly as
// Rust's String::from_utf8_lossy does (one U+FFFD per maximal invalid subpart), which is what
// Hugging Face's decoders return.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace moe::model {

// The byte offset of the first byte that does not start a well-formed UTF-8 sequence (overlong
// forms, surrogates and code points above U+10FFFF are ill-formed), or npos when `text` is valid.
size_t FindInvalidUtf8(std::string_view text);

// OK for valid UTF-8; otherwise InvalidArgument "invalid UTF-8 at byte offset N (byte 0xXX)"
// (callers prefix the field name with Annotate).
Status ValidateUtf8(std::string_view text);

// Decodes the code point starting at text[pos] of VALID UTF-8 and advances `pos` past it.
inline char32_t NextCodePoint(std::string_view text, size_t* pos) {
  const auto* p = reinterpret_cast<const uint8_t*>(text.data()) + *pos;
  const uint8_t b0 = p[0];
  if (b0 < 0x80) {
    *pos += 1;
    return b0;
  }
  if (b0 < 0xE0) {
    *pos += 2;
    return (static_cast<char32_t>(b0 & 0x1F) << 6) | (p[1] & 0x3F);
  }
  if (b0 < 0xF0) {
    *pos += 3;
    return (static_cast<char32_t>(b0 & 0x0F) << 12) | (static_cast<char32_t>(p[1] & 0x3F) << 6) |
           (p[2] & 0x3F);
  }
  *pos += 4;
  return (static_cast<char32_t>(b0 & 0x07) << 18) | (static_cast<char32_t>(p[1] & 0x3F) << 12) |
         (static_cast<char32_t>(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
}

// The length in bytes of the UTF-8 sequence whose lead byte is `lead` (1 for continuation bytes).
inline int Utf8SequenceLength(uint8_t lead) {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

// Appends the UTF-8 encoding of a code point (<= U+10FFFF, not a surrogate).
void AppendUtf8(char32_t code_point, std::string* out);

// Appends `bytes` to `out` as valid UTF-8, replacing each maximal invalid subpart with U+FFFD.
// When `final` is false, a trailing sequence that is incomplete but could still become valid is
// not consumed; the return value is the number of bytes consumed (all of them when `final`).
// Feeding a byte stream in pieces, carrying the unconsumed tail over, gives the same text as one
// call on the whole stream.
size_t AppendUtf8Lossy(std::string_view bytes, bool final, std::string* out);

}  // namespace moe::model
