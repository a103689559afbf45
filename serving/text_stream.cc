#include "serving/text_stream.h"

namespace moe::serving {

TextStream::TextStream(const model::Tokenizer& tokenizer, std::vector<std::string> stop_strings)
    : stops_(stop_strings),
      detokenizer_(tokenizer, model::DetokenizerOptions{true, std::move(stop_strings), false}) {}

TextStream::Delta TextStream::Add(std::span<const int32_t> ids) {
  Delta delta;
  if (detokenizer_.stopped()) return delta;
  for (size_t i = 0; i < ids.size(); ++i) {
    delta.text += detokenizer_.Add(ids[i]);
    delta.tokens_kept = i + 1;
    if (detokenizer_.stopped()) {
      delta.stopped = true;
      break;
    }
  }
  return delta;
}

std::string TextStream::Finish() { return detokenizer_.stopped() ? "" : detokenizer_.Finish(); }

const std::string& TextStream::matched_stop() const {
  static const std::string kNone;
  const int i = detokenizer_.matched_stop();
  return i >= 0 ? stops_[i] : kNone;
}

}  // namespace moe::serving
