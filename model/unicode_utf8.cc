#include "model/unicode_utf8.h"

#include <cstring>

namespace moe::model {
namespace {

enum class SeqKind { kValid, kIncomplete, kInvalid };

struct SeqResult {
  SeqKind kind;
  int length;  // kValid: sequence length; kInvalid: length of the maximal invalid subpart
};

// Classifies the sequence starting at p[0] (p[0] >= 0x80) given `avail` readable bytes, following
// the Unicode "maximal subpart" rule that Rust's UTF-8 decoder implements.
SeqResult Classify(const uint8_t* p, size_t avail) {
  const uint8_t b0 = p[0];
  int need;
  uint8_t lo = 0x80;
  uint8_t hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {SeqKind::kInvalid, 1};
  }
  for (int k = 1; k <= need; ++k) {
    if (static_cast<size_t>(k) >= avail) return {SeqKind::kIncomplete, k};
    const uint8_t b = p[k];
    const uint8_t l = k == 1 ? lo : 0x80;
    const uint8_t h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) return {SeqKind::kInvalid, k};
  }
  return {SeqKind::kValid, need + 1};
}

// Length of the leading run of ASCII bytes.
size_t AsciiPrefix(const uint8_t* p, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t word;
    std::memcpy(&word, p + i, 8);
    if (word & 0x8080808080808080ULL) break;
  }
  while (i < n && p[i] < 0x80) ++i;
  return i;
}

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

}  // namespace

size_t FindInvalidUtf8(std::string_view text) {
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    i += AsciiPrefix(p + i, n - i);
    if (i >= n) break;
    const SeqResult r = Classify(p + i, n - i);
    if (r.kind != SeqKind::kValid) return i;
    i += r.length;
  }
  return std::string_view::npos;
}

Status ValidateUtf8(std::string_view text) {
  const size_t bad = FindInvalidUtf8(text);
  if (bad == std::string_view::npos) return OkStatus();
  return InvalidArgument("invalid UTF-8 at byte offset ", bad, " (byte 0x",
                         absl::Hex(static_cast<uint8_t>(text[bad]), absl::kZeroPad2), ")");
}

void AppendUtf8(char32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

size_t AppendUtf8Lossy(std::string_view bytes, bool final, std::string* out) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 0;
  size_t run_start = 0;  // start of the valid bytes not yet copied
  while (i < n) {
    i += AsciiPrefix(p + i, n - i);
    if (i >= n) break;
    const SeqResult r = Classify(p + i, n - i);
    if (r.kind == SeqKind::kValid) {
      i += r.length;
      continue;
    }
    out->append(bytes.data() + run_start, i - run_start);
    if (r.kind == SeqKind::kIncomplete) {
      if (!final) return i;
      out->append(kReplacement);
      return n;
    }
    out->append(kReplacement);
    i += r.length;
    run_start = i;
  }
  out->append(bytes.data() + run_start, n - run_start);
  return n;
}

}  // namespace moe::model
