#include "model/tokenizer_decoder.h"

#include <cstring>

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
                                              const std::vector<const std::string*>& tokens,
                                              const std::vector<bool>& special) {
  TokenDecoder d;
  if (field.is_null()) {
    d.kind_ = Kind::kJoinWithSpace;
  } else {
    MOE_RETURN_IF_ERROR(CheckByteLevel(field));
    d.kind_ = Kind::kByteLevel;
  }
  d.entries_.resize(tokens.size());
  std::string token_bytes;
  for (size_t id = 0; id < tokens.size(); ++id) {
    Entry& e = d.entries_[id];
    e = Entry{};
    const std::string* t = tokens[id];
    if (t == nullptr) continue;
    e.flags = kHasToken | (special[id] ? kSpecial : 0);
    token_bytes.clear();
    if (d.kind_ != Kind::kByteLevel || !ByteLevelMapping::Decode(*t, &token_bytes)) {
      token_bytes = *t;
    }
    if (token_bytes.size() > UINT16_MAX) {
      return InvalidArgument("tokenizer.json: token ", id, " is longer than 65535 bytes");
    }
    e.length = static_cast<uint16_t>(token_bytes.size());
    if (token_bytes.size() <= kInlineBytes) {
      std::memcpy(e.inline_bytes, token_bytes.data(), token_bytes.size());
    } else {
      e.offset = static_cast<uint32_t>(d.bytes_.size());
      d.bytes_.append(token_bytes);
    }
  }
  return d;
}

void TokenDecoder::AppendBytes(std::span<const int32_t> ids, bool skip_special_tokens,
                               std::string* bytes) const {
  const uint8_t skip_mask = skip_special_tokens ? kSpecial : 0;
  if (kind_ == Kind::kJoinWithSpace) {
    bool started = false;
    for (int32_t id : ids) AppendBytes(id, skip_special_tokens, &started, bytes);
    return;
  }
  // Size first, then one fixed-size copy per short token into the final buffer (with slack for
  // the inline copies to overrun).
  size_t total = 0;
  for (int32_t id : ids) {
    if (Keeps(id, skip_mask)) total += entries_[id].length;
  }
  const size_t start = bytes->size();
  bytes->resize(start + total + kInlineBytes);
  char* out = bytes->data() + start;
  for (int32_t id : ids) {
    if (!Keeps(id, skip_mask)) continue;
    const Entry& e = entries_[id];
    if (e.length <= kInlineBytes) {
      std::memcpy(out, e.inline_bytes, kInlineBytes);
    } else {
      std::memcpy(out, bytes_.data() + e.offset, e.length);
    }
    out += e.length;
  }
  bytes->resize(start + total);
}

void TokenDecoder::AppendBytes(int32_t id, bool skip_special_tokens, bool* started,
                               std::string* bytes) const {
  if (!Keeps(id, skip_special_tokens ? kSpecial : 0)) return;
  if (*started && kind_ == Kind::kJoinWithSpace) bytes->push_back(' ');
  bytes->append(Bytes(entries_[id]));
  *started = true;
}

}  // namespace moe::model
