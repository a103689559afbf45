#include "model/tokenizer_config.h"

#include <charconv>

namespace moe::model {
namespace {

// A token setting: null, a string, or an AddedToken object {"content": ...}.
StatusOr<std::optional<std::string>> TokenSetting(const JsonField& parent, std::string_view key) {
  const JsonField field = parent.Child(key);
  if (field.is_null()) return std::optional<std::string>();
  if (field.value().is_string())
    return std::optional<std::string>(field.value().get<std::string>());
  if (field.value().is_object()) {
    MOE_ASSIGN_OR_RETURN(std::string content, field.String("content"));
    return std::optional<std::string>(std::move(content));
  }
  return field.Error("expected a token string, an object with \"content\", or null");
}

}  // namespace

StatusOr<TokenizerConfig> TokenizerConfig::FromJson(const JsonField& field) {
  MOE_RETURN_IF_ERROR(field.ExpectObject());
  TokenizerConfig c;
  MOE_ASSIGN_OR_RETURN(c.bos_token, TokenSetting(field, "bos_token"));
  MOE_ASSIGN_OR_RETURN(c.eos_token, TokenSetting(field, "eos_token"));
  MOE_ASSIGN_OR_RETURN(c.pad_token, TokenSetting(field, "pad_token"));
  MOE_ASSIGN_OR_RETURN(c.unk_token, TokenSetting(field, "unk_token"));
  MOE_ASSIGN_OR_RETURN(c.add_bos_token, field.BoolOr("add_bos_token", false));
  MOE_ASSIGN_OR_RETURN(c.add_eos_token, field.BoolOr("add_eos_token", false));
  MOE_ASSIGN_OR_RETURN(c.split_special_tokens, field.BoolOr("split_special_tokens", false));
  const JsonField decoder = field.Child("added_tokens_decoder");
  if (!decoder.is_null()) {
    MOE_RETURN_IF_ERROR(decoder.ExpectObject());
    for (const auto& item : decoder.value().items()) {
      const std::string& key = item.key();
      int64_t id = -1;
      const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
      if (ec != std::errc() || end != key.data() + key.size() || id < 0 || id > INT32_MAX) {
        return decoder.Child(key).Error("the key must be a token id");
      }
      MOE_ASSIGN_OR_RETURN(AddedToken token,
                           ParseAddedToken(decoder.Child(key), static_cast<int32_t>(id)));
      c.added_tokens.push_back(std::move(token));
    }
  }
  return c;
}

}  // namespace moe::model
