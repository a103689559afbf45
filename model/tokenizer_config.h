// tokenizer_config.json, the transformers-side settings next to tokenizer.json: which tokens are
// bos/eos/pad/unk, whether bos/eos are added when encoding, whether special tokens in text are
// matched, and added tokens the tokenizer.json may lack (`added_tokens_decoder`).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/tokenizer_added_tokens.h"
#include "model/tokenizer_json_field.h"

namespace moe::model {

struct TokenizerConfig {
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::optional<std::string> pad_token;
  std::optional<std::string> unk_token;
  bool add_bos_token = false;
  bool add_eos_token = false;
  // True: special tokens written in the text are encoded as plain text.
  bool split_special_tokens = false;
  std::vector<AddedToken> added_tokens;

  // Parses the tokenizer_config.json object. Errors name the offending key.
  static StatusOr<TokenizerConfig> FromJson(const JsonField& field);
};

}  // namespace moe::model
