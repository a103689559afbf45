#include "model/tokenizer_detokenizer.h"

#include "model/unicode_utf8.h"

namespace moe::model {

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer,
                                               DetokenizerOptions options)
    : tokenizer_(tokenizer), options_(std::move(options)), stops_(options_.stop_strings) {}

std::string IncrementalDetokenizer::Add(int32_t id) {
  return Add(std::span<const int32_t>(&id, 1));
}

std::string IncrementalDetokenizer::Add(std::span<const int32_t> ids) {
  if (stopped() || finished_) return std::string();
  for (int32_t id : ids) {
    tokenizer_.AppendDecodedBytes(id, options_.skip_special_tokens, &started_, &bytes_);
  }
  const size_t consumed = AppendUtf8Lossy(bytes_, /*final=*/false, &pending_);
  bytes_.erase(0, consumed);
  return Release(/*final=*/false);
}

std::string IncrementalDetokenizer::Finish() {
  if (stopped() || finished_) return std::string();
  finished_ = true;
  AppendUtf8Lossy(bytes_, /*final=*/true, &pending_);
  bytes_.clear();
  return Release(/*final=*/true);
}

std::string IncrementalDetokenizer::Release(bool final) {
  std::string out;
  if (stops_.empty()) {
    out.swap(pending_);
    return out;
  }
  const StopStringMatcher::Scan scan = stops_.Find(pending_);
  if (scan.matched >= 0) {
    matched_stop_ = scan.matched;
    out = pending_.substr(0, options_.include_stop_string ? scan.match_end : scan.match_begin);
    pending_.clear();
    bytes_.clear();
    return out;
  }
  const size_t release = final ? pending_.size() : scan.safe_end;
  out = pending_.substr(0, release);
  pending_.erase(0, release);
  return out;
}

}  // namespace moe::model
