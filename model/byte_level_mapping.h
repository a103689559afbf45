// GPT-2's byte <-> unicode mapping used by Hugging Face's ByteLevel pre-tokenizer and decoder:
// each byte is shown as one printable code point (printable Latin-1 bytes as themselves, the other
// 68 bytes as U+0100.. in byte order), so that a byte-level vocabulary is a set of UTF-8 strings.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace moe::model {

class ByteLevelMapping {
 public:
  // The UTF-8 encoding (1 or 2 bytes) of the code point that stands for byte `b`.
  static std::string_view ByteToChars(uint8_t b);
  // The byte a code point stands for, or -1 when it stands for none.
  static int CodePointToByte(char32_t c);

  // Appends the mapped form of raw bytes (each byte becomes its code point).
  static void Encode(std::string_view raw, std::string* out);
  // Appends the bytes a mapped token stands for. Returns false, appending nothing, when the token
  // holds a code point outside the mapping (the ByteLevel decoder then keeps the token's own
  // UTF-8 bytes). `token` must be valid UTF-8.
  static bool Decode(std::string_view token, std::string* out);
};

}  // namespace moe::model
