#include "model/tokenizer_added_tokens.h"

#include <algorithm>
#include <cstring>

#include "model/unicode_properties.h"
#include "model/unicode_utf8.h"

namespace moe::model {

StatusOr<AddedToken> ParseAddedToken(const JsonField& field, std::optional<int32_t> id) {
  MOE_RETURN_IF_ERROR(field.ExpectObject());
  AddedToken t;
  if (id) {
    t.id = *id;
  } else {
    MOE_ASSIGN_OR_RETURN(int64_t parsed, field.Int("id"));
    if (parsed < 0 || parsed > INT32_MAX) return field.Child("id").Error("id out of range");
    t.id = static_cast<int32_t>(parsed);
  }
  MOE_ASSIGN_OR_RETURN(t.content, field.String("content"));
  if (t.content.empty()) return field.Child("content").Error("an added token cannot be empty");
  if (FindInvalidUtf8(t.content) != std::string_view::npos) {
    return field.Child("content").Error("not valid UTF-8");
  }
  MOE_ASSIGN_OR_RETURN(t.special, field.BoolOr("special", false));
  MOE_ASSIGN_OR_RETURN(t.single_word, field.BoolOr("single_word", false));
  MOE_ASSIGN_OR_RETURN(t.lstrip, field.BoolOr("lstrip", false));
  MOE_ASSIGN_OR_RETURN(t.rstrip, field.BoolOr("rstrip", false));
  MOE_ASSIGN_OR_RETURN(t.normalized, field.BoolOr("normalized", !t.special));
  return t;
}

void AddedTokens::Matcher::Add(std::string_view content, int32_t token_index) {
  if (node_token.empty()) node_token.push_back(-1);
  uint32_t node = 0;
  for (char c : content) {
    const uint32_t key = (node << 8) | static_cast<uint8_t>(c);
    auto it = children.find(key);
    if (it == children.end()) {
      node_token.push_back(-1);
      it = children.emplace(key, static_cast<uint32_t>(node_token.size() - 1)).first;
    }
    node = it->second;
  }
  // Two tokens with the same matching form: the first one added is the one reported.
  if (node_token[node] < 0) node_token[node] = token_index;
  const uint8_t first = static_cast<uint8_t>(content[0]);
  only_first_byte = num_tokens++ == 0 || only_first_byte == first ? first : -1;
  first_byte[first] = true;
}

size_t AddedTokens::Matcher::LongestAt(std::string_view text, size_t pos,
                                       int32_t* token_index) const {
  *token_index = -1;
  size_t best = 0;
  uint32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    auto it = children.find((node << 8) | static_cast<uint8_t>(text[i]));
    if (it == children.end()) break;
    node = it->second;
    if (node_token[node] >= 0) {
      *token_index = node_token[node];
      best = i + 1 - pos;
    }
  }
  return best;
}

AddedTokens::AddedTokens(std::vector<AddedToken> tokens, const Normalizer& normalizer)
    : tokens_(std::move(tokens)) {
  // Hugging Face registers special tokens before the others; matching order between two tokens
  // of the same text follows that.
  std::vector<size_t> order(tokens_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return tokens_[a].special && !tokens_[b].special; });
  for (size_t i : order) {
    const AddedToken& t = tokens_[i];
    by_id_.insert_or_assign(t.id, i);
    by_content_.emplace(t.content, i);
    if (t.normalized) {
      std::string scratch;
      const std::string_view form = normalizer.Normalize(t.content, &scratch);
      if (!form.empty()) normalized_.Add(form, static_cast<int32_t>(i));
    } else {
      raw_.Add(t.content, static_cast<int32_t>(i));
    }
  }
}

const AddedToken* AddedTokens::Find(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedTokens::Find(std::string_view content) const {
  auto it = by_content_.find(absl::string_view(content.data(), content.size()));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

void AddedTokens::Split(std::string_view text, bool normalized, bool match_special,
                        std::vector<TextSegment>* out) const {
  const size_t n = text.size();
  const Matcher& m = normalized ? normalized_ : raw_;
  if (m.empty() || n == 0) {
    out->push_back({0, n, -1});
    return;
  }
  // Port of AddedVocabulary::find_matches: iteration resumes after each match's end, even when
  // the match is then discarded (single_word) or skipped (special tokens left as text).
  size_t start_offset = 0;
  size_t pos = 0;
  while (pos < n) {
    int32_t index = -1;
    size_t length = 0;
    size_t start = pos;
    for (; start < n; ++start) {
      if (m.only_first_byte >= 0) {
        const void* hit = std::memchr(text.data() + start, m.only_first_byte, n - start);
        if (hit == nullptr) break;
        start = static_cast<size_t>(static_cast<const char*>(hit) - text.data());
      } else if (!m.first_byte[static_cast<uint8_t>(text[start])]) {
        continue;
      }
      length = m.LongestAt(text, start, &index);
      if (length > 0) break;
    }
    if (index < 0) break;
    size_t stop = start + length;
    pos = stop;
    const AddedToken& t = tokens_[index];
    if (t.special && !match_special) continue;
    if (t.single_word) {
      const bool start_space = start == 0 || !EndsWithWordChar(text.substr(0, start));
      const bool stop_space = stop == n || !StartsWithWordChar(text.substr(stop));
      if (!start_space || !stop_space) continue;
    }
    if (t.lstrip) start = std::max(TrailingWhiteSpaceStart(text.substr(0, start)), start_offset);
    if (t.rstrip) stop += LeadingWhiteSpaceLength(text.substr(stop));
    if (start_offset < start) out->push_back({start_offset, start, -1});
    out->push_back({start, stop, t.id});
    start_offset = stop;
  }
  if (start_offset != n) out->push_back({start_offset, n, -1});
}

}  // namespace moe::model
