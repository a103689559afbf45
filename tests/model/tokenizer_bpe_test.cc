// The BPE model: merges by rank (leftmost on ties), the heap path for long words against a plain
// reference, the word cache, unk / byte fallback / ignore_merges, and load errors naming keys.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "model/bpe_model.h"
#include "model/byte_level_mapping.h"
#include "tests/model/tokenizer_test_json.h"

namespace moe::model {
namespace {

using testing::TinyMerges;
using testing::TinyTokenizerJson;

std::unique_ptr<BpeModel> TinyModel(bool byte_level = true) {
  const nlohmann::json j = TinyTokenizerJson();
  auto m = BpeModel::FromJson(JsonField(j["model"], "tokenizer.json", "model"), byte_level);
  EXPECT_TRUE(m.ok()) << m.status();
  return std::move(m).value();
}

std::vector<int32_t> Tokenize(const BpeModel& m, std::string_view word) {
  std::vector<int32_t> ids;
  m.Tokenize(word, &ids);
  return ids;
}

// Textbook BPE on mapped strings: merge the lowest-ranked adjacent pair, leftmost first.
std::vector<std::string> ReferenceBpe(std::string_view raw) {
  std::map<std::pair<std::string, std::string>, int> rank;
  const auto merges = TinyMerges();
  for (size_t i = 0; i < merges.size(); ++i) rank[merges[i]] = static_cast<int>(i);
  std::vector<std::string> s;
  for (char c : raw) s.emplace_back(ByteLevelMapping::ByteToChars(static_cast<uint8_t>(c)));
  while (s.size() > 1) {
    int best = -1;
    size_t at = 0;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      auto it = rank.find({s[i], s[i + 1]});
      if (it != rank.end() && (best < 0 || it->second < best)) {
        best = it->second;
        at = i;
      }
    }
    if (best < 0) break;
    s[at] += s[at + 1];
    s.erase(s.begin() + static_cast<std::ptrdiff_t>(at) + 1);
  }
  return s;
}

std::vector<std::string> Tokens(const BpeModel& m, const std::vector<int32_t>& ids) {
  std::vector<std::string> out;
  for (int32_t id : ids) out.push_back(*m.IdToToken(id));
  return out;
}

TEST(BpeModelTest, MergesByRank) {
  const auto m = TinyModel();
  using V = std::vector<std::string>;
  EXPECT_EQ(Tokens(*m, Tokenize(*m, "hello")), (V{"hello"}));
  EXPECT_EQ(Tokens(*m, Tokenize(*m, " world")), (V{"Ġworld"}));
  EXPECT_EQ(Tokens(*m, Tokenize(*m, "hellohello")), (V{"hello", "hello"}));
  EXPECT_EQ(Tokens(*m, Tokenize(*m, "aaa")), (V{"aaa"}));
  EXPECT_EQ(Tokens(*m, Tokenize(*m, "aaaa")), (V{"aa", "aa"}));  // a+a outranks aa+a
  EXPECT_EQ(Tokens(*m, Tokenize(*m, "x")), (V{"x"}));
  EXPECT_EQ(Tokens(*m, Tokenize(*m, "\xE4\xBD\xA0")), (V{"ä", "½", "ł"}));
  EXPECT_EQ(m->num_merges(), TinyMerges().size());
}

TEST(BpeModelTest, LongWordsAndCacheAgreeWithReference) {
  const auto m = TinyModel();
  std::mt19937 rng(7);
  const std::string alphabet = "aaaa  hello wrd12t";
  for (int trial = 0; trial < 400; ++trial) {
    const size_t len = 1 + rng() % (trial < 200 ? 40 : 300);
    std::string word;
    for (size_t i = 0; i < len; ++i) word += alphabet[rng() % alphabet.size()];
    const auto expected = ReferenceBpe(word);
    EXPECT_EQ(Tokens(*m, Tokenize(*m, word)), expected) << "'" << word << "'";
    EXPECT_EQ(Tokens(*m, Tokenize(*m, word)), expected) << "cached '" << word << "'";
  }
}

TEST(BpeModelTest, NonByteLevelWordsUseCharacters) {
  const auto m = TinyModel(/*byte_level=*/false);
  using V = std::vector<std::string>;
  EXPECT_EQ(Tokens(*m, Tokenize(*m, "Ġworld")), (V{"Ġworld"}));
  // "你" has no token and there is no unk: dropped, as Hugging Face does without unk_token.
  EXPECT_EQ(Tokens(*m, Tokenize(*m,
                                "h\xE4\xBD\xA0"
                                "e")),
            (V{"he"}));
}

TEST(BpeModelTest, UnknownByteFallbackAndIgnoreMerges) {
  nlohmann::json model = {{"type", "BPE"},
                          {"unk_token", "<unk>"},
                          {"byte_fallback", true},
                          {"fuse_unk", true},
                          {"vocab",
                           {{"<unk>", 0},
                            {"<0xE4>", 1},
                            {"<0xBD>", 2},
                            {"<0xA0>", 3},
                            {"a", 4},
                            {"b", 5},
                            {"ab", 6},
                            {"abb", 7},
                            {"bb", 8}}},
                          {"merges", nlohmann::json::array({"a b", "b b"})}};
  auto m = BpeModel::FromJson(JsonField(model, "tokenizer.json", "model"), false);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(Tokenize(**m, "ab\xE4\xBD\xA0"), (std::vector<int32_t>{6, 1, 2, 3}));
  EXPECT_EQ(Tokenize(**m, "abb"), (std::vector<int32_t>{6, 5}));  // "abb" is unreachable

  model["byte_fallback"] = false;
  m = BpeModel::FromJson(JsonField(model, "tokenizer.json", "model"), false);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(Tokenize(**m,
                     "a\xE4\xBD\xA0\xE4\xBD\xA0"
                     "b"),
            (std::vector<int32_t>{4, 0, 5}));
  model["fuse_unk"] = false;
  m = BpeModel::FromJson(JsonField(model, "tokenizer.json", "model"), false);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(Tokenize(**m,
                     "a\xE4\xBD\xA0\xE4\xBD\xA0"
                     "b"),
            (std::vector<int32_t>{4, 0, 0, 5}));

  model["ignore_merges"] = true;
  m = BpeModel::FromJson(JsonField(model, "tokenizer.json", "model"), false);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(Tokenize(**m, "abb"), (std::vector<int32_t>{7}));
}

TEST(BpeModelTest, LoadErrorsNameTheKey) {
  auto error = [](const nlohmann::json& model) {
    return StatusMessage(
        BpeModel::FromJson(JsonField(model, "tokenizer.json", "model"), true).status());
  };
  nlohmann::json m = TinyTokenizerJson()["model"];
  m["merges"][3] = nlohmann::json::array({"zz", "q"});
  EXPECT_NE(error(m).find("key 'model.merges[3]'"), std::string::npos) << error(m);
  m = TinyTokenizerJson()["model"];
  m["merges"][0] = 17;
  EXPECT_NE(error(m).find("key 'model.merges[0]'"), std::string::npos) << error(m);
  m = TinyTokenizerJson()["model"];
  m["vocab"]["h"] = "seven";
  EXPECT_NE(error(m).find("key 'model.vocab.h'"), std::string::npos) << error(m);
  m = TinyTokenizerJson()["model"];
  m["type"] = "Unigram";
  EXPECT_NE(error(m).find("key 'model.type'"), std::string::npos) << error(m);
  m = TinyTokenizerJson()["model"];
  m["dropout"] = 0.1;
  EXPECT_NE(error(m).find("key 'model.dropout'"), std::string::npos) << error(m);
  m = TinyTokenizerJson()["model"];
  m.erase("vocab");
  EXPECT_NE(error(m).find("key 'model.vocab'"), std::string::npos) << error(m);
}

}  // namespace
}  // namespace moe::model
