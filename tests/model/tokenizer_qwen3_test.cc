// The real Qwen3 tokenizer embedded in the build (skipped when the build has none): ids known
// from Hugging Face's tokenizers, the special ids the demo preset declares, and a demo model
// directory's tokenizer files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "model/embedded_tokenizer_files.h"
#include "model/random_model.h"
#include "model/tokenizer.h"
#include "model/tokenizer_detokenizer.h"
#include "model/tokenizer_loader.h"
#include "tests/testing/test_models.h"

namespace moe::model {
namespace {

const Tokenizer* Qwen3() {
  static const Tokenizer* t = []() -> const Tokenizer* {
    const auto files = EmbeddedQwen3TokenizerFiles();
    if (files.empty()) return nullptr;
    auto made = Tokenizer::FromJson(files[0].contents, files[1].contents);
    EXPECT_TRUE(made.ok()) << made.status();
    return made.ok() ? made->release() : nullptr;
  }();
  return t;
}

#define SKIP_WITHOUT_QWEN3()                              \
  if (Qwen3() == nullptr)                                 \
  GTEST_SKIP() << "this build embeds no Qwen3 tokenizer " \
                  "(node_modules missing at configure time)"

std::vector<int32_t> Encode(std::string_view text) {
  auto ids = Qwen3()->Encode(text);
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : std::vector<int32_t>();
}

TEST(Qwen3TokenizerTest, KnownIds) {
  SKIP_WITHOUT_QWEN3();
  // Reference ids from Hugging Face tokenizers 0.22 on the same tokenizer.json.
  EXPECT_EQ(Encode("Hello world! It's 2024."),
            (std::vector<int32_t>{9707, 1879, 0, 1084, 594, 220, 17, 15, 17, 19, 13}));
  EXPECT_EQ(Encode("  \n\n  x<|im_start|>user\n\xE4\xBD\xA0\xE5\xA5\xBD\xF0\x9F\x98\x80 e\xCC\x81"),
            (std::vector<int32_t>{18611, 220, 856, 151644, 872, 198, 108386, 141334, 3958}));
  EXPECT_EQ(Encode("don't DON'T"), (std::vector<int32_t>{15007, 944, 44273, 17323}));
  EXPECT_EQ(Encode("\xC3\xBF"), (std::vector<int32_t>{145059}));
}

TEST(Qwen3TokenizerTest, VocabularyAndSpecialIds) {
  SKIP_WITHOUT_QWEN3();
  const Tokenizer& t = *Qwen3();
  EXPECT_EQ(t.vocab_size(), 151669);
  EXPECT_EQ(t.model().num_merges(), 151387u);
  EXPECT_EQ(t.special_ids().eos, 151645);  // <|im_end|>
  EXPECT_EQ(t.special_ids().pad, 151643);  // <|endoftext|>
  EXPECT_FALSE(t.special_ids().bos.has_value());
  EXPECT_TRUE(t.IsSpecial(151644));
  EXPECT_FALSE(t.IsSpecial(151657));  // <tool_call> is added but not special
  // The demo preset's ids are Qwen3's: its eos ids and bos are tokens of this tokenizer, and its
  // vocabulary is the tokenizer's padded to Qwen3's 151,936.
  auto demo = PresetConfig("demo");
  ASSERT_TRUE(demo.ok());
  EXPECT_EQ(demo->vocab_size, 151936);
  EXPECT_GE(demo->vocab_size, t.vocab_size());
  EXPECT_EQ(t.IdToToken(demo->bos_token_id), "<|endoftext|>");
  ASSERT_EQ(demo->eos_token_ids.size(), 2u);
  EXPECT_EQ(demo->eos_token_ids[0], *t.special_ids().eos);
  EXPECT_EQ(t.IdToToken(demo->eos_token_ids[1]), "<|endoftext|>");
}

TEST(Qwen3TokenizerTest, ChatTemplateRoundTrip) {
  SKIP_WITHOUT_QWEN3();
  const std::string chat =
      "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
      "4<|im_end|>";
  const auto ids = Encode(chat);
  EXPECT_EQ(Qwen3()->Decode(ids), chat);
  EXPECT_EQ(Qwen3()->Decode(ids, {.skip_special_tokens = true}),
            "user\nWhat is 2+2?\nassistant\n<think>\n\n</think>\n\n4");
  // Streaming with the chat's stop string.
  DetokenizerOptions o;
  o.stop_strings = {"</think>"};
  IncrementalDetokenizer d(*Qwen3(), o);
  std::string out;
  for (int32_t id : ids) out += d.Add(id);
  out += d.Finish();
  EXPECT_EQ(out, "user\nWhat is 2+2?\nassistant\n<think>\n\n");
}

TEST(Qwen3TokenizerTest, LoadsFromAModelDirectory) {
  SKIP_WITHOUT_QWEN3();
  const std::string dir = moe::testing::MakeScratchDir("qwen3_tokenizer");
  for (const EmbeddedFile& f : EmbeddedQwen3TokenizerFiles()) {
    std::ofstream(dir + "/" + std::string(f.name), std::ios::binary)
        .write(f.contents.data(), static_cast<std::streamsize>(f.contents.size()));
  }
  auto t = LoadTokenizer(dir);
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_NE(*t, nullptr);
  EXPECT_EQ((*t)->vocab_size(), 151669);
}

}  // namespace
}  // namespace moe::model
