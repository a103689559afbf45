#include "model/tokenizer_stop_strings.h"

#include <algorithm>

namespace moe::model {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) {
  for (size_t i = 0; i < stops.size(); ++i) {
    if (stops[i].empty()) continue;
    stops_.push_back(std::move(stops[i]));
    original_index_.push_back(static_cast<int>(i));
  }
}

StopStringMatcher::Scan StopStringMatcher::Find(std::string_view text) const {
  Scan scan;
  size_t best_end = std::string_view::npos;
  size_t best_begin = 0;
  for (size_t i = 0; i < stops_.size(); ++i) {
    const size_t pos = text.find(stops_[i]);
    if (pos == std::string_view::npos) continue;
    const size_t end = pos + stops_[i].size();
    if (end < best_end || (end == best_end && pos < best_begin)) {
      best_end = end;
      best_begin = pos;
      scan.matched = original_index_[i];
    }
  }
  if (scan.matched >= 0) {
    scan.match_begin = best_begin;
    scan.match_end = best_end;
    return scan;
  }
  // Hold back the longest tail of `text` that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string& stop : stops_) {
    for (size_t k = std::min(stop.size() - 1, text.size()); k > hold; --k) {
      if (text.substr(text.size() - k) == std::string_view(stop).substr(0, k)) {
        hold = k;
        break;
      }
    }
  }
  scan.safe_end = text.size() - hold;
  return scan;
}

}  // namespace moe::model
