#include "model/tokenizer_regex.h"

#include <vector>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "model/unicode_utf8.h"

namespace moe::model {
namespace {

// Unicode White_Space, which is what Oniguruma's \s matches: Z* plus TAB..CR and NEL.
constexpr std::string_view kSpaceItems = "\\p{Z}\\t-\\r\\x{85}";
constexpr std::string_view kHexItems = "0-9a-fA-F";

bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool IsAsciiLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// The index just past the group opened at p[open] ('('), or npos when unbalanced; sets
// `has_class` when the group holds a character class.
size_t GroupEnd(std::string_view p, size_t open, bool* has_class) {
  int depth = 0;
  bool in_class = false;
  for (size_t i = open; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\') {
      ++i;
      continue;
    }
    if (in_class) {
      if (c == ']') in_class = false;
      continue;
    }
    if (c == '[') {
      in_class = true;
      *has_class = true;
      if (i + 1 < p.size() && p[i + 1] == '^') ++i;
      if (i + 1 < p.size() && p[i + 1] == ']') ++i;
    } else if (c == '(') {
      ++depth;
    } else if (c == ')') {
      if (--depth == 0) return i + 1;
    }
  }
  return std::string_view::npos;
}

std::string PcreError(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

// Per-thread match state, shared by all patterns: one ovector pair (only whole matches are used)
// and a JIT stack that can grow for long runs of backtracking (e.g. `\s+(?!\S)` over megabytes
// of spaces).
struct MatchScratch {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;

  MatchScratch() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    jit_stack = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, nullptr);
    pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~MatchScratch() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

MatchScratch& ThreadScratch() {
  thread_local MatchScratch scratch;
  return scratch;
}

}  // namespace

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(code); }
};

Regex::Regex(std::unique_ptr<Code> code) : code_(std::move(code)) {}
Regex::~Regex() = default;

std::string Regex::TranslateOniguruma(std::string_view p) {
  std::string out;
  out.reserve(p.size() * 2);
  bool in_class = false;
  // For each open group: whether it is a (?i:...) group whose ASCII letters are being expanded.
  std::vector<bool> groups;
  int caseless_depth = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char d = p[i + 1];
      if (d == 's' || d == 'h') {
        const std::string_view items = d == 's' ? kSpaceItems : kHexItems;
        if (in_class) {
          out.append(items);
        } else {
          out.append("[").append(items).append("]");
        }
        ++i;
        continue;
      }
      if ((d == 'S' || d == 'H') && !in_class) {
        out.append("[^").append(d == 'S' ? kSpaceItems : kHexItems).append("]");
        ++i;
        continue;
      }
      if (d == 'u' && i + 5 < p.size() && IsHex(p[i + 2]) && IsHex(p[i + 3]) && IsHex(p[i + 4]) &&
          IsHex(p[i + 5])) {
        out.append("\\x{").append(p.substr(i + 2, 4)).append("}");
        i += 5;
        continue;
      }
      if ((d == 'p' || d == 'P' || d == 'x') && i + 2 < p.size() && p[i + 2] == '{') {
        const size_t close = p.find('}', i + 2);
        if (close != std::string_view::npos) {
          out.append(p.substr(i, close + 1 - i));
          i = close;
          continue;
        }
      }
      out.append(p.substr(i, 2));
      ++i;
      continue;
    }
    if (in_class) {
      if (c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
        const size_t close = p.find(":]", i + 2);
        if (close != std::string_view::npos) {
          out.append(p.substr(i, close + 2 - i));
          i = close + 1;
          continue;
        }
      }
      if (c == ']') in_class = false;
      out.push_back(c);
      continue;
    }
    if (c == '[') {
      in_class = true;
      out.push_back(c);
      if (i + 1 < p.size() && p[i + 1] == '^') out.push_back(p[++i]);
      if (i + 1 < p.size() && p[i + 1] == ']') out.push_back(p[++i]);
      continue;
    }
    if (c == '(') {
      bool has_class = false;
      if (p.substr(i, 4) == "(?i:" && GroupEnd(p, i, &has_class) != std::string_view::npos &&
          !has_class) {
        out.append("(?:");
        groups.push_back(true);
        ++caseless_depth;
        i += 3;
        continue;
      }
      groups.push_back(false);
      out.push_back(c);
      continue;
    }
    if (c == ')') {
      if (!groups.empty()) {
        if (groups.back()) --caseless_depth;
        groups.pop_back();
      }
      out.push_back(c);
      continue;
    }
    if (caseless_depth > 0 && IsAsciiLetter(c)) {
      const char lower = static_cast<char>(c | 0x20);
      out.push_back('[');
      out.push_back(lower);
      out.push_back(static_cast<char>(lower & ~0x20));
      out.push_back(']');
      continue;
    }
    out.push_back(c);
  }
  return out;
}

StatusOr<std::unique_ptr<Regex>> Regex::Compile(std::string_view pattern, bool literal) {
  const std::string translated = literal ? std::string(pattern) : TranslateOniguruma(pattern);
  // PCRE2_LITERAL admits no UCP (which only matters to escapes a literal cannot have).
  const uint32_t options = PCRE2_UTF | PCRE2_NO_UTF_CHECK | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  auto code = std::make_unique<Code>();
  code->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                             options, &error, &error_offset, nullptr);
  if (code->code == nullptr) {
    return InvalidArgument("regex /", translated, "/: ", PcreError(error), " at offset ",
                           error_offset);
  }
  code->jit = pcre2_jit_compile(code->code, PCRE2_JIT_COMPLETE) == 0;
  return std::unique_ptr<Regex>(new Regex(std::move(code)));
}

Status Regex::ForEachMatch(std::string_view subject,
                           absl::FunctionRef<void(size_t begin, size_t end)> on_match) const {
  MatchScratch& scratch = ThreadScratch();
  const auto* text = reinterpret_cast<PCRE2_SPTR>(subject.data());
  const size_t n = subject.size();
  PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(scratch.data);
  size_t search_from = 0;
  size_t last_match_end = std::string_view::npos;
  while (search_from <= n) {
    const int rc = code_->jit ? pcre2_jit_match(code_->code, text, n, search_from, 0, scratch.data,
                                                scratch.context)
                              : pcre2_match(code_->code, text, n, search_from, PCRE2_NO_UTF_CHECK,
                                            scratch.data, scratch.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) return ResourceExhausted("regex match failed: ", PcreError(rc));
    const size_t begin = ovector[0];
    const size_t end = ovector[1];
    if (begin == end && end == last_match_end) {
      // Step over one character so that an empty match cannot repeat.
      if (search_from >= n) break;
      search_from += Utf8SequenceLength(static_cast<uint8_t>(subject[search_from]));
      continue;
    }
    on_match(begin, end);
    search_from = end;
    last_match_end = end;
  }
  return OkStatus();
}

}  // namespace moe::model
