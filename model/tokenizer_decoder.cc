#include "model/tokenizer_decoder.h"

#include "model/byte_level_mapping.h"

namespace moe::model {
namespace {

Status CheckByteLevel(const JsonField& field) {
  MOE_RETURN_IF_ERROR(field.ExpectObject());
  MOE_ASSIGN_OR_RETURN(std::string type, field.String("type"));
  if (type == "ByteLevel") return OkStatus();
  if (type == "Sequence") {
    const JsonField list = field.Child("decoders");
    MOE_RETURN_IF_ERROR(list.ExpectArray());
    if (list.value().empty()) return list.Error("an empty decoder Sequence is not supported");
    for (size_t i = 0; i < list.value().size(); ++i) {
      MOE_RETURN_IF_ERROR(CheckByteLevel(list.At(i)));
    }
    return OkStatus();
  }
  return field.Child("type").Error("unsupported decoder \"" + type +
                                   "\" (supported: ByteLevel, Sequence of ByteLevel, null)");
}

}  // namespace

StatusOr<TokenDecoder> TokenDecoder::FromJson(const JsonField& field,
                                              const std::vector<const std::string*>& tokens) {
  TokenDecoder d;
  if (field.is_null()) {
    d.kind_ = Kind::kJoinWithSpace;
  } else {
    MOE_RETURN_IF_ERROR(CheckByteLevel(field));
    d.kind_ = Kind::kByteLevel;
  }
  d.offsets_.reserve(tokens.size() + 1);
  d.present_.assign(tokens.size(), false);
  d.offsets_.push_back(0);
  for (size_t id = 0; id < tokens.size(); ++id) {
    if (const std::string* t = tokens[id]) {
      d.present_[id] = true;
      if (d.kind_ != Kind::kByteLevel || !ByteLevelMapping::Decode(*t, &d.bytes_)) {
        d.bytes_.append(*t);
      }
    }
    d.offsets_.push_back(static_cast<uint32_t>(d.bytes_.size()));
  }
  return d;
}

}  // namespace moe::model
