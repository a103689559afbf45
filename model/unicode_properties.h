// The two character classes that Hugging Face's added-token matching uses through Rust's regex
// crate: `\s` (Unicode White_Space) for lstrip/rstrip and `\w` for single_word.
#pragma once

#include <cstddef>
#include <string_view>

namespace moe::model {

// Unicode White_Space.
bool IsWhiteSpace(char32_t c);
// Rust regex `\w`: Alphabetic, marks, decimal digits, connector punctuation, join controls.
bool IsWordChar(char32_t c);

// For valid UTF-8: the offset where the trailing run of White_Space starts (text.size() if none),
// and the length of the leading run.
size_t TrailingWhiteSpaceStart(std::string_view text);
size_t LeadingWhiteSpaceLength(std::string_view text);

// Whether valid UTF-8 `text` ends / starts with a `\w` character.
bool EndsWithWordChar(std::string_view text);
bool StartsWithWordChar(std::string_view text);

}  // namespace moe::model
