// Streaming detokenization: chunks never split a character, their concatenation equals a full
// decode, and stop strings match across chunk boundaries and are trimmed.
#include "model/tokenizer_detokenizer.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "model/unicode_utf8.h"
#include "tests/model/tokenizer_test_json.h"

namespace moe::model {
namespace {

using testing::TinyId;
using testing::TinyTokenizerJson;

const Tokenizer& Tiny() {
  static const Tokenizer* t = [] {
    auto made = Tokenizer::FromJson(TinyTokenizerJson().dump(), "");
    EXPECT_TRUE(made.ok()) << made.status();
    return made->release();
  }();
  return *t;
}

std::vector<int32_t> Ids(std::string_view text) {
  auto ids = Tiny().Encode(text);
  EXPECT_TRUE(ids.ok());
  return *ids;
}

struct Streamed {
  std::vector<std::string> chunks;
  std::string text;
  int matched = -1;
};

Streamed Stream(const std::vector<int32_t>& ids, DetokenizerOptions options) {
  IncrementalDetokenizer d(Tiny(), std::move(options));
  Streamed s;
  for (int32_t id : ids) {
    s.chunks.push_back(d.Add(id));
    s.text += s.chunks.back();
  }
  s.chunks.push_back(d.Finish());
  s.text += s.chunks.back();
  s.matched = d.matched_stop();
  return s;
}

TEST(DetokenizerTest, ChunksAreWholeCharactersAndConcatenateToDecode) {
  // Byte-level tokens of multi-byte characters arrive one byte per id here.
  const std::string text = "h\xC3\xA9llo \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80!<|end|>x";
  const std::vector<int32_t> ids = Ids(text);
  for (bool skip : {false, true}) {
    DetokenizerOptions o;
    o.skip_special_tokens = skip;
    const Streamed s = Stream(ids, o);
    DecodeOptions d;
    d.skip_special_tokens = skip;
    EXPECT_EQ(s.text, Tiny().Decode(ids, d));
    for (const std::string& chunk : s.chunks) {
      EXPECT_EQ(FindInvalidUtf8(chunk), std::string_view::npos) << chunk;
    }
    EXPECT_EQ(s.matched, -1);
  }
}

TEST(DetokenizerTest, InvalidBytesMatchFullDecode) {
  const nlohmann::json j = TinyTokenizerJson();
  // ä ½ (E4 BD) then a space: the incomplete character becomes U+FFFD exactly as in Decode.
  const std::vector<int32_t> ids = {TinyId(j, "ä"), TinyId(j, "½"), TinyId(j, "Ġ"), TinyId(j, "ä"),
                                    TinyId(j, "½")};
  const Streamed s = Stream(ids, {});
  EXPECT_EQ(s.text, Tiny().Decode(ids));
  EXPECT_EQ(s.text, "\xEF\xBF\xBD \xEF\xBF\xBD");
  EXPECT_EQ(s.chunks.back(), "\xEF\xBF\xBD");  // the trailing incomplete one comes at Finish
}

TEST(DetokenizerTest, RandomIdStreamsEqualDecode) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<int32_t> ids;
    const int n = 1 + static_cast<int>(rng() % 20);
    for (int i = 0; i < n; ++i)
      ids.push_back(static_cast<int32_t>(rng() % (Tiny().vocab_size() + 3)));
    EXPECT_EQ(Stream(ids, {}).text, Tiny().Decode(ids, {.skip_special_tokens = true}));
  }
}

TEST(DetokenizerTest, StopStringAcrossChunks) {
  // "hello world": tokens "hello", "Ġworld"; the stop string "lo wo" spans both.
  DetokenizerOptions o;
  o.stop_strings = {"zzz", "lo wo"};
  const Streamed s = Stream(Ids("hello world and more"), o);
  EXPECT_EQ(s.text, "hel");
  EXPECT_EQ(s.matched, 1);
  o.include_stop_string = true;
  EXPECT_EQ(Stream(Ids("hello world and more"), o).text, "hello wo");
}

TEST(DetokenizerTest, HeldBackPrefixIsReleasedWhenItCannotMatch) {
  DetokenizerOptions o;
  o.stop_strings = {"hello!"};
  const std::vector<int32_t> ids = Ids("hello world");
  IncrementalDetokenizer d(Tiny(), o);
  EXPECT_EQ(d.Add(ids[0]), "");  // "hello" could start "hello!"
  EXPECT_EQ(d.Add(ids[1]), "hello world");
  EXPECT_EQ(d.Finish(), "");
  EXPECT_FALSE(d.stopped());

  IncrementalDetokenizer e(Tiny(), o);
  EXPECT_EQ(e.Add(ids[0]), "");
  EXPECT_EQ(e.Finish(), "hello");  // end of stream: the prefix can no longer complete
}

TEST(DetokenizerTest, FirstStopToEndWinsWhateverTheChunking) {
  DetokenizerOptions o;
  o.stop_strings = {"hello world", "lo"};
  const std::vector<int32_t> ids = Ids("hello world");
  const Streamed one_by_one = Stream(ids, o);
  EXPECT_EQ(one_by_one.text, "hel");
  EXPECT_EQ(one_by_one.matched, 1);
  IncrementalDetokenizer all(Tiny(), o);
  std::string text = all.Add(ids);
  text += all.Finish();
  EXPECT_EQ(text, "hel");
  EXPECT_EQ(all.matched_stop(), 1);
}

TEST(DetokenizerTest, IgnoresIdsAfterStop) {
  DetokenizerOptions o;
  o.stop_strings = {"world"};
  IncrementalDetokenizer d(Tiny(), o);
  const std::vector<int32_t> ids = Ids("hello world hello");
  std::string out;
  for (int32_t id : ids) out += d.Add(id);
  out += d.Finish();
  EXPECT_EQ(out, "hello ");
  EXPECT_TRUE(d.stopped());
  EXPECT_EQ(d.Add(ids[0]), "");
}

TEST(DetokenizerTest, StopStringWithMultiByteCharacters) {
  DetokenizerOptions o;
  o.stop_strings = {"\xE5\xA5\xBD"};                                          // 好
  const Streamed s = Stream(Ids("\xE4\xBD\xA0\xE5\xA5\xBD\xE5\x90\x97"), o);  // 你好吗
  EXPECT_EQ(s.text, "\xE4\xBD\xA0");
  for (const std::string& chunk : s.chunks) {
    EXPECT_EQ(FindInvalidUtf8(chunk), std::string_view::npos);
  }
}

}  // namespace
}  // namespace moe::model
