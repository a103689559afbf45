// Regular expressions of tokenizer.json, run with PCRE2 (UTF + UCP, JIT-compiled). Hugging Face
// runs them with Oniguruma, so patterns are translated where the two differ on the constructs
// tokenizer files use: `\s`/`\S` become Unicode White_Space exactly (PCRE2 adds U+180E), ASCII
// letters in `(?i:...)` groups become [xX] classes (PCRE2 would also fold U+017F to s),
// `\uHHHH` becomes `\x{HHHH}`, and `\h`/`\H` mean hex digits as in Oniguruma.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "core/status.h"

namespace moe::model {

class Regex {
 public:
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Compiles an Oniguruma-syntax pattern, or a literal string when `literal`. Errors carry
  // PCRE2's message and the offset in the translated pattern.
  static StatusOr<std::unique_ptr<Regex>> Compile(std::string_view pattern, bool literal);

  // The PCRE2 pattern `onig_pattern` is translated to.
  static std::string TranslateOniguruma(std::string_view onig_pattern);

  // Calls `on_match(begin, end)` for each successive non-overlapping match in valid UTF-8
  // `subject`, with Oniguruma's find_iter rules for empty matches (an empty match right after
  // the previous match is skipped). Thread-safe; an error only when PCRE2 gives up (resource
  // limits).
  Status ForEachMatch(std::string_view subject,
                      absl::FunctionRef<void(size_t begin, size_t end)> on_match) const;

 private:
  struct Code;
  explicit Regex(std::unique_ptr<Code> code);
  std::unique_ptr<Code> code_;
};

}  // namespace moe::model
