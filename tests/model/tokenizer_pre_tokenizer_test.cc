// The regex layer (Oniguruma -> PCRE2 translation, find_iter semantics) and the pre-tokenizer
// (Split behaviours, ByteLevel, Digits, Sequence, load errors).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "model/tokenizer_pre_tokenizer.h"
#include "model/tokenizer_regex.h"

namespace moe::model {
namespace {

constexpr const char* kQwenPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N})"
    R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::vector<std::string> Matches(const Regex& re, std::string_view text) {
  std::vector<std::string> out;
  const Status s =
      re.ForEachMatch(text, [&](size_t b, size_t e) { out.emplace_back(text.substr(b, e - b)); });
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

std::unique_ptr<Regex> Compile(std::string_view pattern, bool literal = false) {
  auto re = Regex::Compile(pattern, literal);
  EXPECT_TRUE(re.ok()) << re.status();
  return std::move(re).value();
}

std::vector<std::string> Words(const PreTokenizer& p, std::string_view text) {
  std::vector<std::string> out;
  const Status s = p.Split(text, [&](std::string_view w) { out.emplace_back(w); });
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

PreTokenizer Parse(const std::string& json) {
  const nlohmann::json j = nlohmann::json::parse(json);
  auto p = PreTokenizer::FromJson(JsonField(j, "tokenizer.json", "pre_tokenizer"));
  EXPECT_TRUE(p.ok()) << p.status();
  return std::move(p).value();
}

Status ParseError(const std::string& json) {
  const nlohmann::json j = nlohmann::json::parse(json);
  return PreTokenizer::FromJson(JsonField(j, "tokenizer.json", "pre_tokenizer")).status();
}

TEST(RegexTest, TranslatesOnigurumaConstructs) {
  EXPECT_EQ(Regex::TranslateOniguruma(R"(\s+)"), R"([\p{Z}\t-\r\x{85}]+)");
  EXPECT_EQ(Regex::TranslateOniguruma(R"([^\s\p{L}])"), R"([^\p{Z}\t-\r\x{85}\p{L}])");
  EXPECT_EQ(Regex::TranslateOniguruma(R"((?!\S))"), R"((?![^\p{Z}\t-\r\x{85}]))");
  EXPECT_EQ(Regex::TranslateOniguruma(R"((?i:'s|'ll))"), R"((?:'[sS]|'[lL][lL]))");
  EXPECT_EQ(Regex::TranslateOniguruma(R"(\u4e00-\u9fa5)"), R"(\x{4e00}-\x{9fa5})");
  EXPECT_EQ(Regex::TranslateOniguruma(R"(\p{L}+\x{41})"), R"(\p{L}+\x{41})");
  EXPECT_EQ(Regex::TranslateOniguruma(R"((?i:[a-z]))"), R"((?i:[a-z]))");  // classes kept
}

TEST(RegexTest, MatchesLikeOniguruma) {
  const auto re = Compile(kQwenPattern);
  // U+180E is not White_Space (PCRE2's own \s would take it), so it joins the punctuation run.
  EXPECT_EQ(Matches(*re, "x\xE1\xA0\x8E\xE1\xA0\x8E!y"),
            (std::vector<std::string>{"x", "\xE1\xA0\x8E\xE1\xA0\x8E!", "y"}));
  // U+3000 is White_Space: \s+(?!\S) leaves the last one before "!" to \s+.
  EXPECT_EQ(Matches(*re, "x\xE3\x80\x80\xE3\x80\x80!"),
            (std::vector<std::string>{"x", "\xE3\x80\x80", "\xE3\x80\x80", "!"}));
  // (?i:'s) takes 'S but not 'ſ (U+017F), which PCRE2's caseless matching would fold to s.
  EXPECT_EQ(Matches(*re, "'S 'ſ"), (std::vector<std::string>{"'S", " '", "ſ"}));
  EXPECT_EQ(Matches(*re, "Hello  world\n\n"),
            (std::vector<std::string>{"Hello", " ", " world", "\n\n"}));
  EXPECT_EQ(Matches(*re, "2024"), (std::vector<std::string>{"2", "0", "2", "4"}));
}

TEST(RegexTest, EmptyMatchesFollowFindIter) {
  const auto re = Compile("a*");
  // Oniguruma's find_iter: an empty match right after a match is skipped.
  EXPECT_EQ(Matches(*re, "baab"), (std::vector<std::string>{"", "aa", ""}));
  EXPECT_TRUE(Matches(*re, "").size() == 1);
}

TEST(RegexTest, LiteralPatterns) {
  const auto re = Compile("a.b", /*literal=*/true);
  EXPECT_EQ(Matches(*re, "a.b axb a.b"), (std::vector<std::string>{"a.b", "a.b"}));
}

TEST(RegexTest, CompileErrorsCarryPcreMessage) {
  const auto re = Regex::Compile("(unclosed", false);
  ASSERT_FALSE(re.ok());
  EXPECT_NE(StatusMessage(re.status()).find("missing closing parenthesis"), std::string::npos)
      << re.status();
}

TEST(RegexTest, LongWhitespaceRunsNeedNoRecursionLimit) {
  const auto re = Compile(kQwenPattern);
  const std::string spaces(1 << 20, ' ');
  const auto m = Matches(*re, spaces + "x");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].size(), spaces.size() - 1);
  EXPECT_EQ(m[1], " x");
}

TEST(PreTokenizerTest, SplitBehaviours) {
  auto split = [](const char* behavior, bool invert) {
    return Parse(std::string(R"({"type": "Split", "pattern": {"String": "-"}, "behavior": ")") +
                 behavior + R"(", "invert": )" + (invert ? "true" : "false") + "}");
  };
  const std::string text = "a-b--c-";
  using V = std::vector<std::string>;
  EXPECT_EQ(Words(split("Removed", false), text), (V{"a", "b", "c"}));
  EXPECT_EQ(Words(split("Isolated", false), text), (V{"a", "-", "b", "-", "-", "c", "-"}));
  EXPECT_EQ(Words(split("MergedWithPrevious", false), text), (V{"a-", "b-", "-", "c-"}));
  EXPECT_EQ(Words(split("MergedWithNext", false), text), (V{"a", "-b", "-", "-c", "-"}));
  EXPECT_EQ(Words(split("Contiguous", false), text), (V{"a", "-", "b", "--", "c", "-"}));
  EXPECT_EQ(Words(split("Removed", true), text), (V{"-", "-", "-", "-"}));
}

TEST(PreTokenizerTest, ByteLevelVariants) {
  const PreTokenizer gpt2 =
      Parse(R"({"type": "ByteLevel", "add_prefix_space": true, "use_regex": true})");
  EXPECT_TRUE(gpt2.byte_level());
  using V = std::vector<std::string>;
  EXPECT_EQ(Words(gpt2, "Hello my friend, it's 2024"),
            (V{" Hello", " my", " friend", ",", " it", "'s", " 2024"}));
  EXPECT_EQ(Words(gpt2, " Hello"), (V{" Hello"}));  // no second prefix space
  const PreTokenizer plain =
      Parse(R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": false})");
  EXPECT_EQ(Words(plain, "Hello my friend"), (V{"Hello my friend"}));
  EXPECT_TRUE(Words(plain, "").empty());
}

TEST(PreTokenizerTest, SequenceAndDigits) {
  const PreTokenizer p = Parse(R"({"type": "Sequence", "pretokenizers": [
      {"type": "Digits", "individual_digits": false},
      {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Removed", "invert": false},
      {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false,
       "use_regex": false}]})");
  EXPECT_EQ(Words(p, "abc 123def  4"), (std::vector<std::string>{"abc", "123", "def", "4"}));
  const PreTokenizer none;
  EXPECT_FALSE(none.byte_level());
  EXPECT_EQ(Words(none, "as is"), (std::vector<std::string>{"as is"}));
}

TEST(PreTokenizerTest, LoadErrorsNameTheKey) {
  auto message = [](const Status& s) { return StatusMessage(s); };
  EXPECT_NE(message(ParseError(R"({"type": "Sequence", "pretokenizers": [{"type": "Metaspace"}]})"))
                .find("key 'pre_tokenizer.pretokenizers[0].type'"),
            std::string::npos);
  EXPECT_NE(message(ParseError(R"({"type": "Split", "pattern": {"Regex": "("},
                                   "behavior": "Isolated"})"))
                .find("key 'pre_tokenizer.pattern'"),
            std::string::npos);
  EXPECT_NE(message(ParseError(R"({"type": "Split", "pattern": {"Regex": "x"},
                                   "behavior": "Sideways"})"))
                .find("key 'pre_tokenizer.behavior'"),
            std::string::npos);
  EXPECT_NE(message(ParseError(R"({"type": "Sequence", "pretokenizers": [
                {"type": "ByteLevel"}, {"type": "Digits"}]})"))
                .find("key 'pre_tokenizer.pretokenizers[0]'"),
            std::string::npos);
  EXPECT_NE(message(ParseError(R"({"pretokenizers": []})")).find("key 'pre_tokenizer.type'"),
            std::string::npos);
}

}  // namespace
}  // namespace moe::model
