// Stop strings over streamed text. The stream's unreleased tail is scanned after each piece:
// the stop occurrence that ends first wins (on a tie, the one that starts first), which does not
// depend on how the stream was cut into pieces; when nothing matches, text that could still
// become the start of a stop string is held back.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace moe::model {

class StopStringMatcher {
 public:
  StopStringMatcher() = default;
  // Empty strings are ignored.
  explicit StopStringMatcher(std::vector<std::string> stops);

  bool empty() const { return stops_.empty(); }

  struct Scan {
    int matched = -1;        // index of the matched stop string (constructor order), or -1
    size_t match_begin = 0;  // where the match starts in the scanned text
    size_t match_end = 0;    // where it ends
    size_t safe_end = 0;     // without a match: text[0, safe_end) can be released
  };
  // Scans unreleased text, assuming no stop string starts inside text released earlier (which
  // holding back `safe_end` guarantees).
  Scan Find(std::string_view text) const;

 private:
  std::vector<std::string> stops_;
  std::vector<int> original_index_;
};

}  // namespace moe::model
