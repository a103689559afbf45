#include "model/bpe_model.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "model/byte_level_mapping.h"
#include "model/unicode_utf8.h"

namespace moe::model {
namespace {

// Words up to this many symbols merge by rescanning a pair array (fast for the short words of
// natural text); longer ones (runs of spaces, long tokens of code) use a heap.
constexpr size_t kSmallWord = 48;
// Longer words are not cached: they rarely repeat.
constexpr size_t kMaxCachedWordBytes = 96;

}  // namespace

StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(const JsonField& field,
                                                       bool byte_level_input) {
  MOE_RETURN_IF_ERROR(field.ExpectObject());
  MOE_ASSIGN_OR_RETURN(std::string type, field.StringOr("type", "BPE"));
  if (type != "BPE") {
    return field.Child("type").Error("unsupported model \"" + type + "\" (supported: BPE)");
  }
  std::unique_ptr<BpeModel> m(new BpeModel());
  m->byte_level_input_ = byte_level_input;
  if (field.Has("dropout")) {
    const JsonField dropout = field.Child("dropout");
    if (!dropout.value().is_number()) return dropout.Error("expected a number or null");
    if (dropout.value().get<double>() != 0.0) {
      return dropout.Error("BPE dropout is a training feature and is not supported");
    }
  }
  MOE_ASSIGN_OR_RETURN(m->continuing_subword_prefix_,
                       field.StringOr("continuing_subword_prefix", ""));
  MOE_ASSIGN_OR_RETURN(m->end_of_word_suffix_, field.StringOr("end_of_word_suffix", ""));
  MOE_ASSIGN_OR_RETURN(m->fuse_unk_, field.BoolOr("fuse_unk", false));
  MOE_ASSIGN_OR_RETURN(m->byte_fallback_, field.BoolOr("byte_fallback", false));
  MOE_ASSIGN_OR_RETURN(m->ignore_merges_, field.BoolOr("ignore_merges", false));

  // Vocabulary.
  const JsonField vocab = field.Child("vocab");
  MOE_RETURN_IF_ERROR(vocab.ExpectObject());
  m->vocab_.reserve(vocab.value().size());
  int64_t max_id = -1;
  for (const auto& [token, id_json] : vocab.value().items()) {
    if (!id_json.is_number_integer() || id_json.get<int64_t>() < 0 ||
        id_json.get<int64_t>() > INT32_MAX) {
      return vocab.Child(token).Error("expected a non-negative integer id");
    }
    const int64_t id = id_json.get<int64_t>();
    if (FindInvalidUtf8(token) != std::string_view::npos) {
      return vocab.Child(token).Error("token is not valid UTF-8");
    }
    m->vocab_.insert_or_assign(token, static_cast<int32_t>(id));
    max_id = std::max(max_id, id);
  }
  m->id_to_token_.resize(static_cast<size_t>(max_id + 1));
  m->has_id_.assign(static_cast<size_t>(max_id + 1), false);
  for (const auto& [token, id] : m->vocab_) {
    m->id_to_token_[id] = token;
    m->has_id_[id] = true;
  }

  if (field.Has("unk_token")) {
    MOE_ASSIGN_OR_RETURN(std::string unk, field.String("unk_token"));
    if (auto id = m->TokenToId(unk)) m->unk_id_ = *id;
  }

  // Merges: "a b" strings (older files) or ["a", "b"] pairs. A later duplicate wins, as in
  // Hugging Face, which collects them into a map.
  const JsonField merges = field.Child("merges");
  if (!merges.is_null()) MOE_RETURN_IF_ERROR(merges.ExpectArray());
  const size_t num_merges = merges.is_null() ? 0 : merges.value().size();
  m->merges_.reserve(num_merges);
  const size_t prefix_len = m->continuing_subword_prefix_.size();
  std::string merged;
  for (size_t i = 0; i < num_merges; ++i) {
    const nlohmann::json& entry = merges.value()[i];
    std::string_view a;
    std::string_view b;
    if (entry.is_string()) {
      const std::string& line = entry.get_ref<const std::string&>();
      const size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
        return merges.At(i).Error("expected \"<left> <right>\"");
      }
      a = std::string_view(line).substr(0, space);
      b = std::string_view(line).substr(space + 1);
    } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() &&
               entry[1].is_string()) {
      a = entry[0].get_ref<const std::string&>();
      b = entry[1].get_ref<const std::string&>();
    } else {
      return merges.At(i).Error("expected a \"<left> <right>\" string or a [left, right] pair");
    }
    const auto a_id = m->TokenToId(a);
    const auto b_id = m->TokenToId(b);
    if (!a_id || !b_id) {
      return merges.At(i).Error("token \"" + std::string(a_id ? b : a) +
                                "\" is not in the vocabulary");
    }
    merged.assign(a);
    merged.append(b.substr(std::min(prefix_len, b.size())));
    const auto merged_id = m->TokenToId(merged);
    if (!merged_id) {
      return merges.At(i).Error("merged token \"" + merged + "\" is not in the vocabulary");
    }
    m->merges_.insert_or_assign(PairKey(*a_id, *b_id), Merge{static_cast<uint32_t>(i), *merged_id});
  }

  // Raw-byte fast path.
  bool all_bytes = byte_level_input;
  for (int b = 0; b < 256; ++b) {
    const auto id = m->TokenToId(ByteLevelMapping::ByteToChars(static_cast<uint8_t>(b)));
    m->byte_ids_[b] = id ? *id : -1;
    all_bytes = all_bytes && id.has_value();
  }
  m->raw_bytes_ =
      all_bytes && m->continuing_subword_prefix_.empty() && m->end_of_word_suffix_.empty();
  return m;
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(absl::string_view(token.data(), token.size()));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || id >= id_limit() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

void BpeModel::Tokenize(std::span<const std::string_view> words, std::vector<int32_t>* ids) const {
  if (!raw_bytes_) {
    for (std::string_view word : words) TokenizeMapped(word, ids);
    return;
  }
  // Hash a batch first and prefetch the cache slots, so their memory latencies overlap.
  constexpr size_t kBatch = 32;
  uint64_t hashes[kBatch];
  for (size_t begin = 0; begin < words.size(); begin += kBatch) {
    const size_t n = std::min(kBatch, words.size() - begin);
    for (size_t i = 0; i < n; ++i) {
      const std::string_view word = words[begin + i];
      if (word.size() > 1 && word.size() <= kMaxCachedWordBytes) {
        hashes[i] = BpeCache::Hash(word);
        cache_.Prefetch(hashes[i]);
      }
    }
    for (size_t i = 0; i < n; ++i) TokenizeRaw(words[begin + i], hashes[i], ids);
  }
}

void BpeModel::TokenizeRaw(std::string_view word, uint64_t hash, std::vector<int32_t>* ids) const {
  if (word.size() == 1) {
    ids->push_back(byte_ids_[static_cast<uint8_t>(word[0])]);
    return;
  }
  if (ignore_merges_) {
    std::string mapped;
    ByteLevelMapping::Encode(word, &mapped);
    if (auto id = TokenToId(mapped)) {
      ids->push_back(*id);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable && cache_.Lookup(word, hash, ids)) return;
  thread_local std::vector<int32_t> symbols;
  symbols.clear();
  for (char c : word) symbols.push_back(byte_ids_[static_cast<uint8_t>(c)]);
  MergeSymbols(&symbols);
  ids->insert(ids->end(), symbols.begin(), symbols.end());
  if (cacheable) cache_.Insert(word, hash, symbols.data(), symbols.size());
}

void BpeModel::TokenizeMapped(std::string_view word, std::vector<int32_t>* ids) const {
  std::string mapped;
  if (byte_level_input_) {
    ByteLevelMapping::Encode(word, &mapped);
    word = mapped;
  }
  if (ignore_merges_) {
    if (auto id = TokenToId(word)) {
      ids->push_back(*id);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  const uint64_t hash = cacheable ? BpeCache::Hash(word) : 0;
  if (cacheable && cache_.Lookup(word, hash, ids)) return;
  thread_local std::vector<int32_t> symbols;
  symbols.clear();
  InitialSymbols(word, &symbols);
  MergeSymbols(&symbols);
  ids->insert(ids->end(), symbols.begin(), symbols.end());
  if (cacheable) cache_.Insert(word, hash, symbols.data(), symbols.size());
}

void BpeModel::InitialSymbols(std::string_view word, std::vector<int32_t>* symbols) const {
  // Port of Hugging Face's BPE::merge_word, including where a pending unknown is flushed.
  int32_t pending_unk = -1;
  std::string piece;
  size_t pos = 0;
  while (pos < word.size()) {
    const size_t start = pos;
    NextCodePoint(word, &pos);
    piece.clear();
    if (start > 0) piece.append(continuing_subword_prefix_);
    piece.append(word.substr(start, pos - start));
    if (pos == word.size()) piece.append(end_of_word_suffix_);
    if (auto id = TokenToId(piece)) {
      if (pending_unk >= 0) symbols->push_back(pending_unk);
      pending_unk = -1;
      symbols->push_back(*id);
      continue;
    }
    if (byte_fallback_) {
      std::vector<int32_t> bytes;
      bool all_found = true;
      for (char c : piece) {
        char name[8];
        std::snprintf(name, sizeof(name), "<0x%02X>", static_cast<uint8_t>(c));
        const auto id = TokenToId(name);
        if (!id) {
          all_found = false;
          break;
        }
        bytes.push_back(*id);
      }
      if (all_found) {
        symbols->insert(symbols->end(), bytes.begin(), bytes.end());
        continue;
      }
    }
    if (!unk_id_) continue;  // no unk token: the character is dropped
    if (pending_unk >= 0 && !fuse_unk_) symbols->push_back(pending_unk);
    pending_unk = *unk_id_;
  }
  if (pending_unk >= 0) symbols->push_back(pending_unk);
}

void BpeModel::MergeSymbols(std::vector<int32_t>* symbols) const {
  if (symbols->size() < 2) return;
  if (symbols->size() <= kSmallWord) {
    MergeSmall(symbols);
  } else {
    MergeLarge(symbols);
  }
}

void BpeModel::MergeSmall(std::vector<int32_t>* symbols) const {
  int32_t* s = symbols->data();
  size_t n = symbols->size();
  Merge pairs[kSmallWord];
  for (size_t i = 0; i + 1 < n; ++i) pairs[i] = FindMerge(s[i], s[i + 1]);
  while (n > 1) {
    uint32_t best = kNoRank;
    size_t at = 0;
    for (size_t i = 0; i + 1 < n; ++i) {
      if (pairs[i].rank < best) {
        best = pairs[i].rank;
        at = i;
      }
    }
    if (best == kNoRank) break;
    s[at] = pairs[at].id;
    for (size_t j = at + 1; j + 1 < n; ++j) s[j] = s[j + 1];
    for (size_t j = at + 1; j + 2 < n; ++j) pairs[j] = pairs[j + 1];
    --n;
    if (at > 0) pairs[at - 1] = FindMerge(s[at - 1], s[at]);
    if (at + 1 < n) pairs[at] = FindMerge(s[at], s[at + 1]);
  }
  symbols->resize(n);
}

void BpeModel::MergeLarge(std::vector<int32_t>* symbols) const {
  // Hugging Face's Word::merge_all: a min-heap on (rank, position) over a linked list; entries
  // made stale by earlier merges are recognised and dropped when popped.
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  struct Entry {
    uint32_t rank;
    uint32_t pos;
    int32_t id;
    bool operator>(const Entry& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  const size_t n = symbols->size();
  std::vector<Symbol> sym(n);
  for (size_t i = 0; i < n; ++i) {
    sym[i] = {(*symbols)[i], static_cast<int32_t>(i) - 1,
              i + 1 < n ? static_cast<int32_t>(i + 1) : -1, true};
  }
  std::vector<Entry> storage;
  storage.reserve(n);
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap(std::greater<Entry>(),
                                                                           std::move(storage));
  for (size_t i = 0; i + 1 < n; ++i) {
    const Merge m = FindMerge(sym[i].id, sym[i + 1].id);
    if (m.rank != kNoRank) heap.push({m.rank, static_cast<uint32_t>(i), m.id});
  }
  while (!heap.empty()) {
    const Entry top = heap.top();
    heap.pop();
    Symbol& left = sym[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = sym[left.next];
    if (FindMerge(left.id, right.id).id != top.id) continue;
    left.id = top.id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) sym[left.next].prev = static_cast<int32_t>(top.pos);
    if (left.prev >= 0) {
      const Merge m = FindMerge(sym[left.prev].id, left.id);
      if (m.rank != kNoRank) heap.push({m.rank, static_cast<uint32_t>(left.prev), m.id});
    }
    if (left.next >= 0) {
      const Merge m = FindMerge(left.id, sym[left.next].id);
      if (m.rank != kNoRank) heap.push({m.rank, top.pos, m.id});
    }
  }
  symbols->clear();
  for (const Symbol& s : sym) {
    if (s.alive) symbols->push_back(s.id);
  }
}

}  // namespace moe::model
