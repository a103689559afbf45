// Incremental detokenization for streaming: generated ids go in one at a time, text comes out in
// chunks such that
//   - a chunk never splits a multi-byte UTF-8 character (bytes of an incomplete character wait
//     for the ids that complete it),
//   - the concatenation of all chunks equals Tokenizer::Decode of all ids (same options), and
//   - stop strings match across chunk boundaries: text that might be the start of a stop string
//     is held back until it is known not to be, and a matched stop string ends the stream with
//     the text trimmed before it (or after it, with include_stop_string).
// One instance per request; not thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/tokenizer.h"
#include "model/tokenizer_stop_strings.h"

namespace moe::model {

struct DetokenizerOptions {
  bool skip_special_tokens = true;
  // Valid UTF-8 (callers validate them like prompts); empty strings are ignored.
  std::vector<std::string> stop_strings;
  // Keep the matched stop string at the end of the text instead of trimming it.
  bool include_stop_string = false;
};

class IncrementalDetokenizer {
 public:
  // `tokenizer` must outlive this object.
  IncrementalDetokenizer(const Tokenizer& tokenizer, DetokenizerOptions options);

  // Feeds generated ids and returns the text they release (possibly empty). After a stop string
  // has matched, ids are ignored and nothing more is released.
  std::string Add(int32_t id);
  std::string Add(std::span<const int32_t> ids);

  // Ends the stream and returns the held-back text: an incomplete UTF-8 tail becomes U+FFFD (as
  // in a full decode) and a partial stop-string prefix is released, since it can no longer
  // complete.
  std::string Finish();

  bool stopped() const { return matched_stop_ >= 0; }
  // Index into options.stop_strings of the stop string that matched, or -1.
  int matched_stop() const { return matched_stop_; }

 private:
  std::string Release(bool final);

  const Tokenizer& tokenizer_;
  DetokenizerOptions options_;
  StopStringMatcher stops_;
  std::string bytes_;    // decoded bytes not yet valid UTF-8 (an incomplete character)
  std::string pending_;  // text not yet released (may start a stop string)
  bool started_ = false;
  bool finished_ = false;
  int matched_stop_ = -1;
};

}  // namespace moe::model
