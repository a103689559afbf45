// UTF-8 validation and lossy repair, the ByteLevel mapping, Unicode normalization (including the
// quick check that skips it) and the character classes of added-token matching.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "model/byte_level_mapping.h"
#include "model/unicode_normalizer.h"
#include "model/unicode_properties.h"
#include "model/unicode_utf8.h"

namespace moe::model {
namespace {

constexpr std::string_view kFffd = "\xEF\xBF\xBD";

std::string Cp(char32_t c) {
  std::string s;
  AppendUtf8(c, &s);
  return s;
}

TEST(Utf8Test, FindsFirstInvalidByte) {
  EXPECT_EQ(FindInvalidUtf8(""), std::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("plain ascii"), std::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("caf\xC3\xA9 \xE4\xBD\xA0 \xF0\x9F\x98\x80"), std::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("abc\xFF"), 3u);
  EXPECT_EQ(FindInvalidUtf8("ab\xC3"), 2u);                 // truncated
  EXPECT_EQ(FindInvalidUtf8("\xC0\xAF"), 0u);               // overlong
  EXPECT_EQ(FindInvalidUtf8("x\xE0\x80\xAF"), 1u);          // overlong 3-byte
  EXPECT_EQ(FindInvalidUtf8("xy\xED\xA0\x80"), 2u);         // surrogate
  EXPECT_EQ(FindInvalidUtf8("\xF4\x90\x80\x80"), 0u);       // above U+10FFFF
  EXPECT_EQ(FindInvalidUtf8("0123456789abcdef\x80"), 16u);  // after the 8-byte fast path
}

TEST(Utf8Test, ValidateNamesTheByteOffset) {
  const Status s = ValidateUtf8("hello \xFFworld");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusMessage(s), "invalid UTF-8 at byte offset 6 (byte 0xff)");
  EXPECT_TRUE(ValidateUtf8("ok").ok());
}

TEST(Utf8Test, LossyReplacesMaximalSubparts) {
  auto lossy = [](std::string_view in) {
    std::string out;
    EXPECT_EQ(AppendUtf8Lossy(in, true, &out), in.size());
    return out;
  };
  const std::string f(kFffd);
  EXPECT_EQ(lossy("ok"), "ok");
  EXPECT_EQ(lossy("a\xFF"
                  "b"),
            "a" + f + "b");
  // A valid prefix cut short by an invalid byte is one replacement (Rust's from_utf8_lossy).
  EXPECT_EQ(lossy("\xE2\x82"
                  "x"),
            f + "x");
  EXPECT_EQ(lossy("\xF0\x9F\x98"), f);  // incomplete at the end: one replacement
  EXPECT_EQ(lossy("\xED\xA0\x80"), f + f + f);
  EXPECT_EQ(lossy("\xC0\xAF"), f + f);
  EXPECT_EQ(lossy("\xF0\x9F\x98\x80\x80"), "\xF0\x9F\x98\x80" + f);
}

TEST(Utf8Test, LossyInPiecesEqualsWhole) {
  const std::string stream =
      "a\xE4\xBD\xA0\xF0\x9F\x98\x80\xFF\xE2\x82x\xC3\xA9\xED\xA0\x80\xF0\x9F\x98";
  std::string whole;
  AppendUtf8Lossy(stream, true, &whole);
  for (size_t step = 1; step <= 4; ++step) {
    std::string pending;
    std::string out;
    for (size_t i = 0; i < stream.size(); i += step) {
      pending += stream.substr(i, step);
      pending.erase(0, AppendUtf8Lossy(pending, false, &out));
    }
    AppendUtf8Lossy(pending, true, &out);
    EXPECT_EQ(out, whole) << "step " << step;
  }
}

TEST(ByteLevelMappingTest, IsABijectionOverBytes) {
  std::set<std::string> seen;
  for (int b = 0; b < 256; ++b) {
    const std::string chars(ByteLevelMapping::ByteToChars(static_cast<uint8_t>(b)));
    EXPECT_TRUE(seen.insert(chars).second);
    std::string back;
    ASSERT_TRUE(ByteLevelMapping::Decode(chars, &back));
    EXPECT_EQ(back, std::string(1, static_cast<char>(b)));
  }
  EXPECT_EQ(ByteLevelMapping::ByteToChars(' '), "\xC4\xA0");   // Ġ
  EXPECT_EQ(ByteLevelMapping::ByteToChars('\n'), "\xC4\x8A");  // Ċ
  EXPECT_EQ(ByteLevelMapping::ByteToChars('a'), "a");
  std::string mapped;
  ByteLevelMapping::Encode("hi \xE4\xBD\xA0", &mapped);
  EXPECT_EQ(mapped, "hi\xC4\xA0\xC3\xA4\xC2\xBD\xC5\x82");  // 0xA0 is shown as U+0142
  std::string out = "keep";
  EXPECT_FALSE(ByteLevelMapping::Decode("\xE4\xBD\xA0", &out));  // 你 is not a mapped char
  EXPECT_EQ(out, "keep");
}

TEST(NormalizerTest, Forms) {
  EXPECT_EQ(NormalizeUnicode("e\xCC\x81", NormalizationForm::kNfc), "\xC3\xA9");
  EXPECT_EQ(NormalizeUnicode("\xC3\xA9", NormalizationForm::kNfd), "e\xCC\x81");
  EXPECT_EQ(NormalizeUnicode("\xEF\xAC\x81", NormalizationForm::kNfkc), "fi");
  EXPECT_EQ(NormalizeUnicode("\xE2\x84\xAB", NormalizationForm::kNfc), "\xC3\x85");  // Å sign
  EXPECT_EQ(NormalizeUnicode("\xE1\x84\x80\xE1\x85\xA1", NormalizationForm::kNfc),
            "\xEA\xB0\x80");  // Hangul jamo compose
}

TEST(NormalizerTest, UnchangedTextIsNotCopied) {
  const Normalizer nfc({NormalizationForm::kNfc});
  std::string scratch;
  const std::string text = "plain text, caf\xC3\xA9, \xE4\xBD\xA0\xE5\xA5\xBD";
  EXPECT_EQ(nfc.Normalize(text, &scratch).data(), text.data());
  const std::string decomposed = "cafe\xCC\x81";
  EXPECT_EQ(nfc.Normalize(decomposed, &scratch), "caf\xC3\xA9");
  EXPECT_TRUE(Normalizer().is_identity());
}

// The quick check may only skip text that the full normalization leaves unchanged: compare both
// for every code point of the first three planes and plane 14, in contexts where it could
// combine with a neighbour.
TEST(NormalizerTest, QuickCheckAgreesWithFullNormalization) {
  for (NormalizationForm form : {NormalizationForm::kNfc, NormalizationForm::kNfd,
                                 NormalizationForm::kNfkc, NormalizationForm::kNfkd}) {
    const Normalizer normalizer({form});
    int mismatches = 0;
    for (char32_t c = 0x80; c < 0x110000 && mismatches < 5; ++c) {
      if (c >= 0xD800 && c <= 0xDFFF) continue;
      if (c >= 0x30000 && c < 0xE0000) c = 0xE0000;
      const std::string cp = Cp(c);
      for (const std::string& text :
           {absl::StrCat("e", cp, "x"), absl::StrCat(cp, "\xCC\x81"),
            absl::StrCat("\xEA\xB0\x80", cp), absl::StrCat("\xE0\xA6\x87", cp)}) {
        std::string scratch;
        if (normalizer.Normalize(text, &scratch) != NormalizeUnicode(text, form)) {
          ADD_FAILURE() << "form " << static_cast<int>(form) << " U+" << std::hex
                        << static_cast<uint32_t>(c);
          ++mismatches;
        }
      }
    }
  }
}

TEST(NormalizerTest, ParsesJsonAndNamesBadKeys) {
  const nlohmann::json ok = nlohmann::json::parse(
      R"({"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "NFC"}]})");
  auto parsed = Normalizer::FromJson(JsonField(ok, "tokenizer.json", "normalizer"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  std::string scratch;
  EXPECT_EQ(parsed->Normalize("e\xCC\x81", &scratch), "\xC3\xA9");

  const nlohmann::json bad = nlohmann::json::parse(
      R"({"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]})");
  const Status s = Normalizer::FromJson(JsonField(bad, "tokenizer.json", "normalizer")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(StatusMessage(s).find("key 'normalizer.normalizers[1].type'"), std::string::npos) << s;
}

TEST(UnicodePropertiesTest, WhiteSpaceAndWordChars) {
  for (char32_t c : {0x20, 0x09, 0x0A, 0x0D, 0x85, 0xA0, 0x1680, 0x2000, 0x2028, 0x3000}) {
    EXPECT_TRUE(IsWhiteSpace(c)) << std::hex << static_cast<uint32_t>(c);
  }
  for (char32_t c : {0x180E, 0x200B, 0xFEFF, 0x1C, 0x61}) {
    EXPECT_FALSE(IsWhiteSpace(c)) << std::hex << static_cast<uint32_t>(c);
  }
  EXPECT_TRUE(IsWordChar('_'));
  EXPECT_TRUE(IsWordChar(0x4F60));  // 你
  EXPECT_TRUE(IsWordChar(0x0301));  // combining acute
  EXPECT_TRUE(IsWordChar(0x0663));  // Arabic-Indic three
  EXPECT_FALSE(IsWordChar('-'));
  EXPECT_FALSE(IsWordChar(0x1F600));
  EXPECT_EQ(TrailingWhiteSpaceStart("ab \t\xE3\x80\x80"), 2u);
  EXPECT_EQ(TrailingWhiteSpaceStart("ab"), 2u);
  EXPECT_EQ(LeadingWhiteSpaceLength("\xC2\xA0 x"), 3u);
  EXPECT_TRUE(EndsWithWordChar("x\xC3\xA9"));
  EXPECT_FALSE(StartsWithWordChar(", x"));
}

}  // namespace
}  // namespace moe::model
