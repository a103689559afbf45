#include "model/byte_level_mapping.h"

#include <array>

#include "model/unicode_utf8.h"

namespace moe::model {
namespace {

struct Tables {
  std::array<char32_t, 256> byte_to_cp;
  std::array<std::string, 256> byte_to_chars;
  std::array<int16_t, 324> cp_to_byte;  // every mapped code point is below 256 + 68

  Tables() {
    cp_to_byte.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      byte_to_cp[b] = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      cp_to_byte[byte_to_cp[b]] = static_cast<int16_t>(b);
      AppendUtf8(byte_to_cp[b], &byte_to_chars[b]);
    }
  }
};

const Tables& GetTables() {
  static const Tables* tables = new Tables();
  return *tables;
}

}  // namespace

std::string_view ByteLevelMapping::ByteToChars(uint8_t b) { return GetTables().byte_to_chars[b]; }

int ByteLevelMapping::CodePointToByte(char32_t c) {
  const Tables& t = GetTables();
  return c < t.cp_to_byte.size() ? t.cp_to_byte[c] : -1;
}

void ByteLevelMapping::Encode(std::string_view raw, std::string* out) {
  const Tables& t = GetTables();
  for (char ch : raw) out->append(t.byte_to_chars[static_cast<uint8_t>(ch)]);
}

bool ByteLevelMapping::Decode(std::string_view token, std::string* out) {
  const size_t start = out->size();
  size_t pos = 0;
  while (pos < token.size()) {
    const int b = CodePointToByte(NextCodePoint(token, &pos));
    if (b < 0) {
      out->resize(start);
      return false;
    }
    out->push_back(static_cast<char>(b));
  }
  return true;
}

}  // namespace moe::model
