// The tokenizer.json `post_processor`, for single sequences: the special ids put before and after
// the encoded text when special tokens are requested. Supported: TemplateProcessing (its
// `single` template), RobertaProcessing and BertProcessing (cls ... sep), ByteLevel (offsets
// only: no ids), Sequence of these, and null.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "model/tokenizer_json_field.h"

namespace moe::model {

struct PostProcessor {
  std::vector<int32_t> prefix;  // ids before the text
  std::vector<int32_t> suffix;  // ids after the text

  static StatusOr<PostProcessor> FromJson(const JsonField& field);
  bool adds_tokens() const { return !prefix.empty() || !suffix.empty(); }
};

}  // namespace moe::model
