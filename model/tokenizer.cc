#include "model/tokenizer.h"

#include <algorithm>
#include <array>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_map.h"
#include "core/logging.h"
#include "model/unicode_utf8.h"

namespace moe::model {
namespace {

constexpr std::string_view kTokenizerFile = "tokenizer.json";
constexpr std::string_view kConfigFile = "tokenizer_config.json";

StatusOr<nlohmann::json> ParseJson(std::string_view text, std::string_view source) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument(source, ": not valid JSON: ", e.what());
  }
}

StatusOr<std::optional<int32_t>> ResolveSetting(const Tokenizer& tok,
                                                const std::optional<std::string>& token,
                                                const JsonField& config, std::string_view key) {
  if (!token) return std::optional<int32_t>();
  if (auto id = tok.TokenToId(*token)) return std::optional<int32_t>(*id);
  return config.Child(key).Error("token \"" + *token + "\" is not in the vocabulary");
}

// Hugging Face ignores the ids written next to added tokens: each token takes the id its content
// already has (an earlier added token, then the model vocabulary), else the next free id after the
// vocabulary and the added ids so far. A later token with the same content replaces the earlier.
std::vector<AddedToken> AssignAddedTokenIds(std::vector<AddedToken> declared,
                                            const BpeModel& model) {
  std::vector<AddedToken> added;
  absl::flat_hash_map<std::string, size_t> by_content;
  const int64_t vocab_size = static_cast<int64_t>(model.vocab_entries());
  int64_t max_added = -1;
  for (AddedToken& t : declared) {
    const int32_t written_id = t.id;
    auto it = by_content.find(t.content);
    if (it != by_content.end()) {
      t.id = added[it->second].id;
    } else if (auto id = model.TokenToId(t.content)) {
      t.id = *id;
    } else if (max_added < 0) {
      t.id = static_cast<int32_t>(vocab_size);
    } else {
      t.id = static_cast<int32_t>(max_added >= vocab_size || vocab_size == 0 ? max_added + 1
                                                                             : vocab_size);
    }
    if (t.id != written_id) {
      MOE_LOG(WARNING) << kTokenizerFile << ": added token \"" << t.content
                       << "\" is written with id " << written_id << " but gets id " << t.id;
    }
    max_added = std::max<int64_t>(max_added, t.id);
    if (it != by_content.end()) {
      added[it->second] = std::move(t);
    } else {
      by_content.emplace(t.content, added.size());
      added.push_back(std::move(t));
    }
  }
  return added;
}

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view tokenizer_json,
                                                         std::string_view config_json) {
  MOE_ASSIGN_OR_RETURN(nlohmann::json root_json, ParseJson(tokenizer_json, kTokenizerFile));
  const JsonField root(root_json, std::string(kTokenizerFile));
  MOE_RETURN_IF_ERROR(root.ExpectObject());
  std::unique_ptr<Tokenizer> tok(new Tokenizer());

  for (const char* key : {"truncation", "padding"}) {
    if (root.Has(key)) {
      MOE_LOG(WARNING) << kTokenizerFile << ": '" << key
                       << "' is ignored: requests are never truncated or padded by the tokenizer";
    }
  }
  MOE_ASSIGN_OR_RETURN(tok->normalizer_, Normalizer::FromJson(root.Child("normalizer")));
  MOE_ASSIGN_OR_RETURN(tok->pre_tokenizer_, PreTokenizer::FromJson(root.Child("pre_tokenizer")));
  MOE_ASSIGN_OR_RETURN(tok->model_,
                       BpeModel::FromJson(root.Child("model"), tok->pre_tokenizer_.byte_level()));
  MOE_ASSIGN_OR_RETURN(tok->post_processor_, PostProcessor::FromJson(root.Child("post_processor")));

  // Added tokens: tokenizer.json's, then any that only tokenizer_config.json declares.
  std::vector<AddedToken> declared;
  const JsonField added_field = root.Child("added_tokens");
  if (!added_field.is_null()) {
    MOE_RETURN_IF_ERROR(added_field.ExpectArray());
    for (size_t i = 0; i < added_field.value().size(); ++i) {
      MOE_ASSIGN_OR_RETURN(AddedToken t, ParseAddedToken(added_field.At(i), std::nullopt));
      declared.push_back(std::move(t));
    }
  }
  nlohmann::json config_json_value = nlohmann::json::object();
  if (!config_json.empty()) {
    MOE_ASSIGN_OR_RETURN(config_json_value, ParseJson(config_json, kConfigFile));
  }
  const JsonField config_field(config_json_value, std::string(kConfigFile));
  MOE_ASSIGN_OR_RETURN(TokenizerConfig config, TokenizerConfig::FromJson(config_field));
  for (AddedToken& t : config.added_tokens) {
    const bool known = std::any_of(declared.begin(), declared.end(), [&](const AddedToken& a) {
      return a.id == t.id || a.content == t.content;
    });
    if (!known) declared.push_back(std::move(t));
  }
  std::vector<AddedToken> added = AssignAddedTokenIds(std::move(declared), *tok->model_);

  // Token strings per id: an added token's content takes precedence over the model's token.
  int32_t limit = tok->model_->id_limit();
  for (const AddedToken& t : added) limit = std::max(limit, t.id + 1);
  std::vector<const std::string*> tokens(static_cast<size_t>(limit), nullptr);
  for (int32_t id = 0; id < tok->model_->id_limit(); ++id) tokens[id] = tok->model_->IdToToken(id);
  std::vector<bool> special(static_cast<size_t>(limit), false);
  for (const AddedToken& t : added) {
    tokens[t.id] = &t.content;
    special[t.id] = t.special;
  }
  MOE_ASSIGN_OR_RETURN(tok->decoder_,
                       TokenDecoder::FromJson(root.Child("decoder"), tokens, special));
  tok->added_ = AddedTokens(std::move(added), tok->normalizer_);

  MOE_ASSIGN_OR_RETURN(tok->special_ids_.bos,
                       ResolveSetting(*tok, config.bos_token, config_field, "bos_token"));
  MOE_ASSIGN_OR_RETURN(tok->special_ids_.eos,
                       ResolveSetting(*tok, config.eos_token, config_field, "eos_token"));
  MOE_ASSIGN_OR_RETURN(tok->special_ids_.pad,
                       ResolveSetting(*tok, config.pad_token, config_field, "pad_token"));
  MOE_ASSIGN_OR_RETURN(tok->special_ids_.unk,
                       ResolveSetting(*tok, config.unk_token, config_field, "unk_token"));
  const PostProcessor& post = tok->post_processor_;
  if (config.add_bos_token && !tok->special_ids_.bos) {
    return config_field.Child("add_bos_token").Error("set, but bos_token is not");
  }
  if (config.add_eos_token && !tok->special_ids_.eos) {
    return config_field.Child("add_eos_token").Error("set, but eos_token is not");
  }
  tok->add_bos_ = config.add_bos_token &&
                  (post.prefix.empty() || post.prefix.front() != *tok->special_ids_.bos);
  tok->add_eos_ =
      config.add_eos_token && (post.suffix.empty() || post.suffix.back() != *tok->special_ids_.eos);
  tok->split_special_tokens_ = config.split_special_tokens;
  return tok;
}

Status Tokenizer::EncodeText(std::string_view text, std::vector<int32_t>* ids) const {
  if (!pre_tokenizer_.words_view_input()) {
    return pre_tokenizer_.Split(text, [&](std::string_view word) { model_->Tokenize(word, ids); });
  }
  // The words view `text`, so they can be handed to the model in batches.
  constexpr size_t kBatch = 256;
  std::array<std::string_view, kBatch> words;
  size_t n = 0;
  const Status status = pre_tokenizer_.Split(text, [&](std::string_view word) {
    words[n++] = word;
    if (n == kBatch) {
      model_->Tokenize(words, ids);
      n = 0;
    }
  });
  model_->Tokenize(std::span<const std::string_view>(words.data(), n), ids);
  return status;
}

Status Tokenizer::Encode(std::string_view text, const EncodeOptions& options,
                         std::vector<int32_t>* ids) const {
  MOE_RETURN_IF_ERROR(ValidateUtf8(text));
  const size_t original_size = ids->size();
  const bool match_special = !options.split_special_tokens.value_or(split_special_tokens_);
  if (options.add_special_tokens) {
    if (add_bos_) ids->push_back(*special_ids_.bos);
    ids->insert(ids->end(), post_processor_.prefix.begin(), post_processor_.prefix.end());
  }
  std::vector<TextSegment> segments;
  std::vector<TextSegment> inner;
  std::string scratch;
  added_.Split(text, /*normalized=*/false, match_special, &segments);
  Status status;
  for (const TextSegment& seg : segments) {
    if (seg.id >= 0) {
      ids->push_back(seg.id);
      continue;
    }
    const std::string_view piece =
        normalizer_.Normalize(text.substr(seg.begin, seg.end - seg.begin), &scratch);
    if (!added_.has_normalized()) {
      status = EncodeText(piece, ids);
    } else {
      inner.clear();
      added_.Split(piece, /*normalized=*/true, match_special, &inner);
      for (const TextSegment& sub : inner) {
        if (sub.id >= 0) {
          ids->push_back(sub.id);
        } else {
          status = EncodeText(piece.substr(sub.begin, sub.end - sub.begin), ids);
          if (!status.ok()) break;
        }
      }
    }
    if (!status.ok()) {
      ids->resize(original_size);
      return status;
    }
  }
  if (options.add_special_tokens) {
    ids->insert(ids->end(), post_processor_.suffix.begin(), post_processor_.suffix.end());
    if (add_eos_) ids->push_back(*special_ids_.eos);
  }
  return OkStatus();
}

StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text,
                                                 const EncodeOptions& options) const {
  std::vector<int32_t> ids;
  MOE_RETURN_IF_ERROR(Encode(text, options, &ids));
  return ids;
}

void Tokenizer::AppendDecodedBytes(int32_t id, bool skip_special_tokens, bool* started,
                                   std::string* bytes) const {
  decoder_.AppendBytes(id, skip_special_tokens, started, bytes);
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, const DecodeOptions& options) const {
  std::string bytes;
  decoder_.AppendBytes(ids, options.skip_special_tokens, &bytes);
  if (FindInvalidUtf8(bytes) == std::string_view::npos) return bytes;
  std::string text;
  AppendUtf8Lossy(bytes, /*final=*/true, &text);
  return text;
}

std::optional<int32_t> Tokenizer::TokenToId(std::string_view token) const {
  if (const AddedToken* t = added_.Find(token)) return t->id;
  return model_->TokenToId(token);
}

std::optional<std::string> Tokenizer::IdToToken(int32_t id) const {
  if (const AddedToken* t = added_.Find(id)) return t->content;
  if (const std::string* t = model_->IdToToken(id)) return *t;
  return std::nullopt;
}

}  // namespace moe::model
