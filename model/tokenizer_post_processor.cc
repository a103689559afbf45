#include "model/tokenizer_post_processor.h"

#include <string>

namespace moe::model {
namespace {

// A ["token", id] pair of RobertaProcessing / BertProcessing.
StatusOr<int32_t> PairId(const JsonField& field) {
  MOE_RETURN_IF_ERROR(field.ExpectArray());
  if (field.value().size() != 2) return field.Error("expected [\"token\", id]");
  MOE_ASSIGN_OR_RETURN(int64_t id, field.At(1).AsInt());
  if (id < 0 || id > INT32_MAX) return field.At(1).Error("id out of range");
  return static_cast<int32_t>(id);
}

StatusOr<PostProcessor> ParseTemplate(const JsonField& field) {
  PostProcessor p;
  const JsonField single = field.Child("single");
  MOE_RETURN_IF_ERROR(single.ExpectArray());
  const JsonField specials = field.Child("special_tokens");
  bool seen_sequence = false;
  for (size_t i = 0; i < single.value().size(); ++i) {
    const JsonField piece = single.At(i);
    MOE_RETURN_IF_ERROR(piece.ExpectObject());
    if (piece.Has("Sequence")) {
      seen_sequence = true;
      continue;
    }
    if (!piece.Has("SpecialToken")) {
      return piece.Error("expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    }
    MOE_ASSIGN_OR_RETURN(std::string name, piece.Child("SpecialToken").String("id"));
    const JsonField special = specials.Child(name);
    if (special.is_null()) return special.Error("template names an undefined special token");
    const JsonField ids = special.Child("ids");
    MOE_RETURN_IF_ERROR(ids.ExpectArray());
    for (size_t k = 0; k < ids.value().size(); ++k) {
      MOE_ASSIGN_OR_RETURN(int64_t id, ids.At(k).AsInt());
      if (id < 0 || id > INT32_MAX) return ids.At(k).Error("id out of range");
      (seen_sequence ? p.suffix : p.prefix).push_back(static_cast<int32_t>(id));
    }
  }
  if (!seen_sequence) return single.Error("the single template has no Sequence");
  return p;
}

}  // namespace

StatusOr<PostProcessor> PostProcessor::FromJson(const JsonField& field) {
  if (field.is_null()) return PostProcessor();
  MOE_RETURN_IF_ERROR(field.ExpectObject());
  MOE_ASSIGN_OR_RETURN(std::string type, field.String("type"));
  if (type == "ByteLevel") return PostProcessor();
  if (type == "TemplateProcessing") return ParseTemplate(field);
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    PostProcessor p;
    MOE_ASSIGN_OR_RETURN(int32_t cls, PairId(field.Child("cls")));
    MOE_ASSIGN_OR_RETURN(int32_t sep, PairId(field.Child("sep")));
    p.prefix.push_back(cls);
    p.suffix.push_back(sep);
    return p;
  }
  if (type == "Sequence") {
    // Each processor wraps the result of the previous one.
    PostProcessor p;
    const JsonField list = field.Child("processors");
    MOE_RETURN_IF_ERROR(list.ExpectArray());
    for (size_t i = 0; i < list.value().size(); ++i) {
      MOE_ASSIGN_OR_RETURN(PostProcessor inner, FromJson(list.At(i)));
      p.prefix.insert(p.prefix.begin(), inner.prefix.begin(), inner.prefix.end());
      p.suffix.insert(p.suffix.end(), inner.suffix.begin(), inner.suffix.end());
    }
    return p;
  }
  return field.Child("type").Error(
      "unsupported post-processor \"" + type +
      "\" (supported: TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel, "
      "Sequence, null)");
}

}  // namespace moe::model
