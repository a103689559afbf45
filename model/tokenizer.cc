#include "model/tokenizer.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "core/logging.h"
#include "model/unicode_utf8.h"

namespace moe::model {
namespace {

constexpr std::string_view kTokenizerFile = "tokenizer.json";
constexpr std::string_view kConfigFile = "tokenizer_config.json";

StatusOr<nlohmann::json> ParseJson(std::string_view text, std::string_view source) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    // Parse again only to learn where the syntax error is.
    try {
      (void)nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      return InvalidArgument(source, ": not valid JSON: ", e.what());
    }
    return InvalidArgument(source, ": not valid JSON");
  }
  return j;
}

StatusOr<std::optional<int32_t>> ResolveSetting(const Tokenizer& tok,
                                                const std::optional<std::string>& token,
                                                const JsonField& config, std::string_view key) {
  if (!token) return std::optional<int32_t>();
  if (auto id = tok.TokenToId(*token)) return std::optional<int32_t>(*id);
  return config.Child(key).Error("token \"" + *token + "\" is not in the vocabulary");
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
  MOE_ASSIGN_OR_RETURN(tok->post_processor_,
                       PostProcessor::FromJson(root.Child("post_processor")));

  // Added tokens: tokenizer.json's, then any that only tokenizer_config.json declares.
  std::vector<AddedToken> added;
  const JsonField added_field = root.Child("added_tokens");
  if (!added_field.is_null()) {
    MOE_RETURN_IF_ERROR(added_field.ExpectArray());
    for (size_t i = 0; i < added_field.value().size(); ++i) {
      MOE_ASSIGN_OR_RETURN(AddedToken t, ParseAddedToken(added_field.At(i), std::nullopt));
      added.push_back(std::move(t));
    }
  }
  nlohmann::json config_json_value = nlohmann::json::object();
  if (!config_json.empty()) {
    MOE_ASSIGN_OR_RETURN(config_json_value, ParseJson(config_json, kConfigFile));
  }
  const JsonField config_field(config_json_value, std::string(kConfigFile));
  MOE_ASSIGN_OR_RETURN(TokenizerConfig config, TokenizerConfig::FromJson(config_field));
  for (AddedToken& t : config.added_tokens) {
    const bool known = std::any_of(added.begin(), added.end(),
                                   [&](const AddedToken& a) { return a.id == t.id; });
    if (!known) added.push_back(std::move(t));
  }

  // Token strings per id: an added token's content takes precedence over the model's token.
  int32_t limit = tok->model_->id_limit();
  for (const AddedToken& t : added) limit = std::max(limit, t.id + 1);
  std::vector<const std::string*> tokens(static_cast<size_t>(limit), nullptr);
  for (int32_t id = 0; id < tok->model_->id_limit(); ++id) tokens[id] = tok->model_->IdToToken(id);
  tok->is_special_.assign(static_cast<size_t>(limit), false);
  for (const AddedToken& t : added) {
    tokens[t.id] = &t.content;
    if (t.special) tok->is_special_[t.id] = true;
  }
  MOE_ASSIGN_OR_RETURN(tok->decoder_, TokenDecoder::FromJson(root.Child("decoder"), tokens));
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
  tok->add_eos_ = config.add_eos_token &&
                  (post.suffix.empty() || post.suffix.back() != *tok->special_ids_.eos);
  tok->split_special_tokens_ = config.split_special_tokens;
  return tok;
}

Status Tokenizer::EncodeText(std::string_view text, std::vector<int32_t>* ids) const {
  return pre_tokenizer_.Split(text,
                              [&](std::string_view word) { model_->Tokenize(word, ids); });
}

Status Tokenizer::Encode(std::string_view text, const EncodeOptions& options,
                         std::vector<int32_t>* ids) const {
  MOE_RETURN_IF_ERROR(ValidateUtf8(text, "text"));
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
  if (!decoder_.HasToken(id)) return;
  if (skip_special_tokens && IsSpecial(id)) return;
  if (*started && decoder_.kind() == TokenDecoder::Kind::kJoinWithSpace) bytes->push_back(' ');
  bytes->append(decoder_.TokenBytes(id));
  *started = true;
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, const DecodeOptions& options) const {
  std::string bytes;
  bool started = false;
  for (int32_t id : ids) AppendDecodedBytes(id, options.skip_special_tokens, &started, &bytes);
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
