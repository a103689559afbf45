// The assembled Tokenizer on a small byte-level BPE: encode/decode, added and special tokens with
// lstrip/rstrip/single_word/normalized, post-processors, tokenizer_config.json, bad input and
// load errors naming the key, and the model-directory hook.
#include "model/tokenizer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/tokenizer_loader.h"
#include "tests/model/tokenizer_test_json.h"
#include "tests/testing/test_models.h"

namespace moe::model {
namespace {

using nlohmann::json;
using testing::TinyId;
using testing::TinyTokenizerJson;

std::unique_ptr<Tokenizer> Make(const json& tok, const json& config = json()) {
  auto t = Tokenizer::FromJson(tok.dump(), config.is_null() ? "" : config.dump());
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(t).value() : nullptr;
}

std::string LoadError(const json& tok, const json& config = json()) {
  auto t = Tokenizer::FromJson(tok.dump(), config.is_null() ? "" : config.dump());
  EXPECT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  return StatusMessage(t.status());
}

std::vector<int32_t> Encode(const Tokenizer& t, std::string_view text, EncodeOptions o = {}) {
  auto ids = t.Encode(text, o);
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : std::vector<int32_t>();
}

std::vector<std::string> Pieces(const Tokenizer& t, const std::vector<int32_t>& ids) {
  std::vector<std::string> out;
  for (int32_t id : ids) out.push_back(t.IdToToken(id).value_or("?"));
  return out;
}

using V = std::vector<std::string>;

TEST(TokenizerTest, EncodesAndDecodes) {
  const auto t = Make(TinyTokenizerJson());
  EXPECT_EQ(Pieces(*t, Encode(*t, "hello world")), (V{"hello", "Ġworld"}));
  EXPECT_EQ(Pieces(*t, Encode(*t, "hello  world\n")), (V{"hello", "Ġ", "Ġworld", "Ċ"}));
  EXPECT_EQ(Pieces(*t, Encode(*t, "12")), (V{"1", "2"}));  // \p{N} splits digits first
  EXPECT_TRUE(Encode(*t, "").empty());
  for (const std::string text :
       {"hello world", "caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80", "  \n\t x", ""}) {
    EXPECT_EQ(t->Decode(Encode(*t, text)), text);
  }
  // NFC applies before BPE: a decomposed é encodes like the composed one.
  EXPECT_EQ(Encode(*t, "e\xCC\x81"), Encode(*t, "\xC3\xA9"));
}

TEST(TokenizerTest, InvalidUtf8NamesTheByteOffset) {
  const auto t = Make(TinyTokenizerJson());
  std::vector<int32_t> ids = {7};
  const Status s = t->Encode("hello \xC3(", {}, &ids);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusMessage(s), "invalid UTF-8 at byte offset 6 (byte 0xc3)");
  EXPECT_EQ(ids, std::vector<int32_t>{7});  // left as it was
}

TEST(TokenizerTest, DecodeSkipsUnknownIdsAndRepairsUtf8) {
  const json j = TinyTokenizerJson();
  const auto t = Make(j);
  const int32_t e4 = TinyId(j, "ä");
  const int32_t bd = TinyId(j, "½");
  EXPECT_EQ(t->Decode(std::vector<int32_t>{TinyId(j, "hello"), 99999, -5, TinyId(j, "Ġworld")}),
            "hello world");
  EXPECT_EQ(t->Decode(std::vector<int32_t>{e4, bd}), "\xEF\xBF\xBD");  // incomplete character
  EXPECT_EQ(t->Decode(std::vector<int32_t>{e4, bd, TinyId(j, "ł")}), "\xE4\xBD\xA0");
}

TEST(TokenizerTest, SpecialTokensInText) {
  const json j = TinyTokenizerJson();
  const auto t = Make(j);
  const int32_t end = TinyId(j, "<|end|>");
  const int32_t x = TinyId(j, "<x>");
  EXPECT_TRUE(t->IsSpecial(end));
  EXPECT_FALSE(t->IsSpecial(x));
  EXPECT_EQ(Pieces(*t, Encode(*t, "hello<|end|> world<x>")),
            (V{"hello", "<|end|>", "Ġworld", "<x>"}));
  EncodeOptions split;
  split.split_special_tokens = true;
  const auto as_text = Encode(*t, "<|end|>", split);
  EXPECT_GT(as_text.size(), 1u);
  EXPECT_EQ(std::count(as_text.begin(), as_text.end(), end), 0);
  EXPECT_EQ(Pieces(*t, Encode(*t, "<x>", split)), (V{"<x>"}));  // not special: still matched
  EXPECT_EQ(t->Decode(std::vector<int32_t>{TinyId(j, "hello"), end, x}), "hello<|end|><x>");
  DecodeOptions skip;
  skip.skip_special_tokens = true;
  EXPECT_EQ(t->Decode(std::vector<int32_t>{TinyId(j, "hello"), end, x}, skip), "hello<x>");
  EXPECT_EQ(t->TokenToId("<|end|>"), end);
  EXPECT_EQ(t->TokenToId("hello"), TinyId(j, "hello"));
  EXPECT_FALSE(t->TokenToId("nope").has_value());
  EXPECT_EQ(t->vocab_size(), x + 1);
}

TEST(TokenizerTest, AddedTokenFlags) {
  json j = TinyTokenizerJson();
  j["normalizer"] = {{"type", "NFKC"}};
  const int next = TinyId(j, "<x>") + 1;
  auto add = [&](const char* content, bool single_word, bool lstrip, bool rstrip, bool normalized) {
    j["added_tokens"].push_back({{"id", next + static_cast<int>(j["added_tokens"].size()) - 2},
                                 {"content", content},
                                 {"single_word", single_word},
                                 {"lstrip", lstrip},
                                 {"rstrip", rstrip},
                                 {"normalized", normalized},
                                 {"special", false}});
  };
  add("[L]", false, true, false, false);
  add("[R]", false, false, true, false);
  add("ab", true, false, false, false);
  add("\xEF\xAC\x81"
      "x",
      false, false, false, true);  // "ﬁx", matched in normalized text as "fix"
  const auto t = Make(j);
  // lstrip / rstrip take the spaces next to the token.
  EXPECT_EQ(Pieces(*t, Encode(*t, "hello  [L]world")), (V{"hello", "[L]", "w", "or", "ld"}));
  EXPECT_EQ(Pieces(*t, Encode(*t, "hello[R] \t world")), (V{"hello", "[R]", "w", "or", "ld"}));
  // single_word: "ab" inside "cab" and before "_" (a word character) stays text.
  EXPECT_EQ(Pieces(*t, Encode(*t, "ab cab ab_ ab")),
            (V{"ab", "Ġ", "c", "a", "b", "Ġ", "a", "b", "_", "Ġ", "ab"}));
  EXPECT_EQ(Pieces(*t, Encode(*t, "fix")), (V{"\xEF\xAC\x81"
                                              "x"}));
  EXPECT_EQ(Pieces(*t, Encode(*t, "\xEF\xAC\x81x")), (V{"\xEF\xAC\x81"
                                                        "x"}));
}

TEST(TokenizerTest, AddedTokenIdsFollowHuggingFace) {
  json j = TinyTokenizerJson();
  // Written ids are ignored: content already in the vocabulary keeps its id, new content gets
  // the next id after the vocabulary and the added ids.
  j["added_tokens"] =
      json::array({{{"id", 5000}, {"content", "hello"}, {"special", false}, {"normalized", false}},
                   {{"id", 6000}, {"content", "<new>"}, {"special", true}, {"normalized", false}}});
  const auto t = Make(j);
  const int32_t vocab_entries = static_cast<int32_t>(TinyTokenizerJson()["model"]["vocab"].size());
  EXPECT_EQ(t->TokenToId("hello"), TinyId(TinyTokenizerJson(), "hello"));
  EXPECT_EQ(t->TokenToId("<new>"), vocab_entries);
}

TEST(TokenizerTest, PostProcessorsAndConfig) {
  json j = TinyTokenizerJson();
  const int32_t end = TinyId(j, "<|end|>");
  const int32_t x = TinyId(j, "<x>");
  j["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       json::array({{{"type", "ByteLevel"}},
                    {{"type", "TemplateProcessing"},
                     {"single", json::array({{{"SpecialToken", {{"id", "<x>"}, {"type_id", 0}}}},
                                             {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                             {{"SpecialToken", {{"id", "E"}, {"type_id", 0}}}}})},
                     {"special_tokens",
                      {{"<x>", {{"id", "<x>"}, {"ids", {x}}, {"tokens", {"<x>"}}}},
                       {"E", {{"id", "E"}, {"ids", {end}}, {"tokens", {"<|end|>"}}}}}}}})}};
  auto t = Make(j);
  const int32_t hello = TinyId(j, "hello");
  EXPECT_EQ(Encode(*t, "hello"), (std::vector<int32_t>{x, hello, end}));
  EncodeOptions plain;
  plain.add_special_tokens = false;
  EXPECT_EQ(Encode(*t, "hello", plain), (std::vector<int32_t>{hello}));

  j["post_processor"] = {
      {"type", "RobertaProcessing"}, {"cls", {"<x>", x}}, {"sep", {"<|end|>", end}}};
  EXPECT_EQ(Encode(*Make(j), "hello"), (std::vector<int32_t>{x, hello, end}));

  // tokenizer_config.json: bos/eos ids, add_bos_token when the post-processor does not.
  j["post_processor"] = nullptr;
  const json config = {{"bos_token", {{"content", "<x>"}, {"__type", "AddedToken"}}},
                       {"eos_token", "<|end|>"},
                       {"pad_token", nullptr},
                       {"add_bos_token", true},
                       {"split_special_tokens", true}};
  t = Make(j, config);
  EXPECT_EQ(t->special_ids().bos, x);
  EXPECT_EQ(t->special_ids().eos, end);
  EXPECT_FALSE(t->special_ids().pad.has_value());
  const auto ids = Encode(*t, "<|end|>");
  EXPECT_EQ(ids.front(), x);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), end), 0);  // split_special_tokens from config
}

TEST(TokenizerTest, LoadErrorsNameTheKey) {
  EXPECT_NE(LoadError(json::array()).find("tokenizer.json: key '<root>'"), std::string::npos);
  EXPECT_NE(Tokenizer::FromJson("{not json", "").status().message().find("not valid JSON"),
            std::string::npos);
  json j = TinyTokenizerJson();
  j["added_tokens"][0].erase("content");
  EXPECT_NE(LoadError(j).find("key 'added_tokens[0].content'"), std::string::npos);
  j = TinyTokenizerJson();
  j["decoder"] = {{"type", "WordPiece"}};
  EXPECT_NE(LoadError(j).find("key 'decoder.type'"), std::string::npos);
  j = TinyTokenizerJson();
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", json::array({{{"SpecialToken", {{"id", "Q"}}}}})},
                         {"special_tokens", json::object()}};
  EXPECT_NE(LoadError(j).find("key 'post_processor.special_tokens.Q'"), std::string::npos);
  j = TinyTokenizerJson();
  j["normalizer"] = {{"type", 3}};
  EXPECT_NE(LoadError(j).find("key 'normalizer.type'"), std::string::npos);
  j = TinyTokenizerJson();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "[";
  EXPECT_NE(LoadError(j).find("key 'pre_tokenizer.pretokenizers[0].pattern'"), std::string::npos);
  EXPECT_NE(LoadError(TinyTokenizerJson(), {{"eos_token", "<nope>"}})
                .find("tokenizer_config.json: key 'eos_token'"),
            std::string::npos);
  EXPECT_NE(LoadError(TinyTokenizerJson(), {{"added_tokens_decoder", {{"x1", json::object()}}}})
                .find("key 'added_tokens_decoder.x1'"),
            std::string::npos);
  EXPECT_NE(LoadError(TinyTokenizerJson(), {{"add_bos_token", "yes"}}).find("key 'add_bos_token'"),
            std::string::npos);
}

TEST(TokenizerTest, ConcurrentEncodingGivesTheSameIds) {
  const auto t = Make(TinyTokenizerJson());
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) {
    texts.push_back(absl::StrCat("hello world ", i, " aaaa", std::string(i % 17, ' '), "hell",
                                 i * 7919, "\xE4\xBD\xA0<|end|>"));
  }
  std::vector<std::vector<int32_t>> expected;
  for (const std::string& text : texts) expected.push_back(Encode(*t, text));
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&] {
      for (int round = 0; round < 20; ++round) {
        for (size_t i = 0; i < texts.size(); ++i) {
          if (t->Encode(texts[i]).value() != expected[i]) ++mismatches;
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(TokenizerLoaderTest, ModelDirectories) {
  const std::string empty_dir = moe::testing::MakeScratchDir("no_tokenizer");
  auto none = LoadTokenizer(empty_dir);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(*none, nullptr);

  const std::string dir = moe::testing::MakeScratchDir("tiny_tokenizer");
  std::ofstream(dir + "/tokenizer.json") << TinyTokenizerJson().dump();
  std::ofstream(dir + "/tokenizer_config.json") << json{{"eos_token", "<|end|>"}}.dump();
  auto loaded = LoadTokenizer(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_NE(*loaded, nullptr);
  EXPECT_EQ((*loaded)->special_ids().eos, TinyId(TinyTokenizerJson(), "<|end|>"));

  std::ofstream(dir + "/tokenizer.json") << R"({"model": {"type": "BPE", "vocab": []}})";
  auto bad = LoadTokenizer(dir);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(StatusMessage(bad.status()).find(dir), std::string::npos);
  EXPECT_NE(StatusMessage(bad.status()).find("key 'model.vocab'"), std::string::npos)
      << bad.status();
}

}  // namespace
}  // namespace moe::model
