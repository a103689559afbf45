// A Hugging Face tokenizer.json tokenizer (byte-level BPE family: Qwen2/3, Llama 3, DeepSeek,
// GPT-2 style), exact to the reference implementation. Encoding runs:
//
//   validate UTF-8 -> added tokens (raw) -> normalizer -> added tokens (normalized)
//     -> pre-tokenizer -> BPE model -> post-processor
//
// and decoding maps ids to bytes and repairs UTF-8. One Tokenizer is immutable after loading and
// safe to use from any number of threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model/bpe_model.h"
#include "model/tokenizer_added_tokens.h"
#include "model/tokenizer_config.h"
#include "model/tokenizer_decoder.h"
#include "model/tokenizer_post_processor.h"
#include "model/tokenizer_pre_tokenizer.h"
#include "model/unicode_normalizer.h"

namespace moe::model {

struct EncodeOptions {
  // Add the post-processor's special tokens (and bos/eos when tokenizer_config.json asks).
  bool add_special_tokens = true;
  // Encode special tokens written in the text as plain text. Unset: tokenizer_config.json's
  // `split_special_tokens` (false by default: "<|im_start|>" in the text is the special id).
  std::optional<bool> split_special_tokens;
};

struct DecodeOptions {
  bool skip_special_tokens = false;
};

// Ids of the tokens tokenizer_config.json names.
struct SpecialTokenIds {
  std::optional<int32_t> bos;
  std::optional<int32_t> eos;
  std::optional<int32_t> pad;
  std::optional<int32_t> unk;
};

class Tokenizer {
 public:
  // Builds a tokenizer from the text of tokenizer.json and, optionally (empty = absent), of
  // tokenizer_config.json. A malformed or unsupported file gives InvalidArgument naming the file
  // and the JSON key.
  static StatusOr<std::unique_ptr<Tokenizer>> FromJson(std::string_view tokenizer_json,
                                                       std::string_view config_json);

  // Appends the ids of `text` to `ids`. Text that is not valid UTF-8 gives InvalidArgument
  // "invalid UTF-8 at byte offset N (byte 0xXX)", and `ids` is left as it was.
  Status Encode(std::string_view text, const EncodeOptions& options,
                std::vector<int32_t>* ids) const;
  StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                        const EncodeOptions& options = {}) const;

  // The text of `ids`. Ids without a token are skipped, as in Hugging Face; byte sequences that
  // are not valid UTF-8 become U+FFFD.
  std::string Decode(std::span<const int32_t> ids, const DecodeOptions& options = {}) const;

  // Appends what `id` contributes to the byte stream Decode() repairs into text: its token's
  // bytes, preceded by a space for decoders that join tokens with spaces once `*started`. Ids
  // without a token and, when skipping, special ids append nothing. For incremental decoding.
  void AppendDecodedBytes(int32_t id, bool skip_special_tokens, bool* started,
                          std::string* bytes) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  std::optional<std::string> IdToToken(int32_t id) const;
  // One more than the largest id (model vocabulary and added tokens).
  int32_t vocab_size() const { return decoder_.num_ids(); }
  bool IsSpecial(int32_t id) const { return decoder_.IsSpecial(id); }
  const SpecialTokenIds& special_ids() const { return special_ids_; }
  const AddedTokens& added_tokens() const { return added_; }
  const BpeModel& model() const { return *model_; }

 private:
  Tokenizer() = default;
  Status EncodeText(std::string_view text, std::vector<int32_t>* ids) const;

  Normalizer normalizer_;
  PreTokenizer pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  AddedTokens added_;
  PostProcessor post_processor_;
  TokenDecoder decoder_;
  SpecialTokenIds special_ids_;
  bool add_bos_ = false;  // tokenizer_config.json add_bos_token / add_eos_token, when the
  bool add_eos_ = false;  // post-processor does not already add them
  bool split_special_tokens_ = false;
};

}  // namespace moe::model
