// The tokenizer.json `pre_tokenizer`: splits normalized text into the words the BPE model reads.
// Supported: Split (regex or literal pattern, all five delimiter behaviours, invert), ByteLevel
// (add_prefix_space, use_regex with GPT-2's pattern), Digits, and Sequence of them, with
// ByteLevel last. When ByteLevel is present the words handed out are raw bytes; the model applies
// the byte -> unicode mapping itself (a bijection, so its vocabulary can be keyed by raw bytes and
// no mapped copy of the text is ever built).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "core/status.h"
#include "model/tokenizer_json_field.h"
#include "model/tokenizer_regex.h"

namespace moe::model {

// How a Split step treats the matches of its pattern (Hugging Face SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreTokenizerStep {
  enum class Kind { kSplit, kByteLevel };
  Kind kind = Kind::kSplit;
  // kSplit
  std::unique_ptr<Regex> regex;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  // kByteLevel
  bool add_prefix_space = false;
  bool use_regex = true;
};

class PreTokenizer {
 public:
  // No steps: the whole text is one word (tokenizer.json `"pre_tokenizer": null`).
  PreTokenizer() = default;
  explicit PreTokenizer(std::vector<PreTokenizerStep> steps);

  // Parses a tokenizer.json pre_tokenizer object (or null). Errors name the offending key.
  static StatusOr<PreTokenizer> FromJson(const JsonField& field);

  // Whether words are raw bytes to be read through the ByteLevel mapping.
  bool byte_level() const { return byte_level_; }
  // Whether every word views the text given to Split (no step adds a prefix space), so words
  // stay valid after their callback.
  bool words_view_input() const { return words_view_input_; }

  // Calls `on_word` for each non-empty word of valid UTF-8 `text`, in order. A word views `text`
  // or (see words_view_input) scratch memory that lives until the callback returns.
  Status Split(std::string_view text, absl::FunctionRef<void(std::string_view)> on_word) const;

 private:
  Status RunStep(size_t step, std::string_view text,
                 absl::FunctionRef<void(std::string_view)> on_word) const;
  Status RunSplit(const PreTokenizerStep& s, size_t next, std::string_view text,
                  absl::FunctionRef<void(std::string_view)> on_word) const;

  std::vector<PreTokenizerStep> steps_;
  std::unique_ptr<Regex> gpt2_regex_;  // for ByteLevel with use_regex
  bool byte_level_ = false;
  bool words_view_input_ = true;
};

}  // namespace moe::model
