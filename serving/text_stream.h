// TextStream: the text side of a streamed request: generated ids in, UTF-8-safe text deltas out,
// stop strings matched across message boundaries. When a stop string matches, the tokens after
// the one that completed it are dropped (the engine may have produced a few more before the stop
// took effect) and the caller ends the request.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "model/tokenizer.h"
#include "model/tokenizer_detokenizer.h"

namespace moe::serving {

class TextStream {
 public:
  TextStream(const model::Tokenizer& tokenizer, std::vector<std::string> stop_strings);

  struct Delta {
    std::string text;
    size_t tokens_kept = 0;  // prefix of the input ids that belongs to the output
    bool stopped = false;    // a stop string matched in this delta
  };
  Delta Add(std::span<const int32_t> ids);
  // The held-back tail at the end of the stream.
  std::string Finish();

  bool stopped() const { return detokenizer_.stopped(); }
  const std::string& matched_stop() const;

 private:
  std::vector<std::string> stops_;
  model::IncrementalDetokenizer detokenizer_;
};

}  // namespace moe::serving
