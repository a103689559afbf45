#include "model/unicode_normalizer.h"

#include <cstdlib>
#include <cstring>

#include <utf8proc.h>

#include "core/check.h"
#include "model/unicode_utf8.h"

namespace moe::model {
namespace {

bool IsHangul(char32_t c) {
  return (c >= 0x1100 && c <= 0x11FF) || (c >= 0xAC00 && c <= 0xD7A3);
}

// False only when `c` is certainly left alone by `form` whatever surrounds it: a starter
// (combining class 0) without a decomposition of the kind the form applies, that is not
// excluded from composition and can never be the second character of a composition.
bool MayChange(char32_t c, NormalizationForm form) {
  if (c < 0x80) return false;
  if (form == NormalizationForm::kNfc && c < 0x300) return false;
  if (IsHangul(c)) return true;
  const utf8proc_property_t* p = utf8proc_get_property(static_cast<utf8proc_int32_t>(c));
  if (p->combining_class != 0 || p->comp_exclusion) return true;
  if (p->comb_index != UINT16_MAX && (p->comb_index & 0x8000)) return true;
  if (p->decomp_seqindex != UINT16_MAX) {
    const bool compat = form == NormalizationForm::kNfkc || form == NormalizationForm::kNfkd;
    if (compat || p->decomp_type == 0) return true;
  }
  return false;
}

bool IsStable(std::string_view text, NormalizationForm form) {
  size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<uint8_t>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    if (MayChange(NextCodePoint(text, &pos), form)) return false;
  }
  return true;
}

StatusOr<NormalizationForm> ParseForm(const JsonField& field) {
  MOE_ASSIGN_OR_RETURN(std::string type, field.String("type"));
  if (type == "NFC") return NormalizationForm::kNfc;
  if (type == "NFD") return NormalizationForm::kNfd;
  if (type == "NFKC") return NormalizationForm::kNfkc;
  if (type == "NFKD") return NormalizationForm::kNfkd;
  return field.Child("type").Error(
      "unsupported normalizer \"" + type + "\" (supported: NFC, NFD, NFKC, NFKD, Sequence)");
}

Status ParseInto(const JsonField& field, std::vector<NormalizationForm>* forms) {
  MOE_RETURN_IF_ERROR(field.ExpectObject());
  MOE_ASSIGN_OR_RETURN(std::string type, field.String("type"));
  if (type != "Sequence") {
    MOE_ASSIGN_OR_RETURN(NormalizationForm form, ParseForm(field));
    forms->push_back(form);
    return OkStatus();
  }
  const JsonField list = field.Child("normalizers");
  MOE_RETURN_IF_ERROR(list.ExpectArray());
  for (size_t i = 0; i < list.value().size(); ++i) {
    MOE_RETURN_IF_ERROR(ParseInto(list.At(i), forms));
  }
  return OkStatus();
}

}  // namespace

StatusOr<Normalizer> Normalizer::FromJson(const JsonField& field) {
  if (field.is_null()) return Normalizer();
  std::vector<NormalizationForm> forms;
  MOE_RETURN_IF_ERROR(ParseInto(field, &forms));
  return Normalizer(std::move(forms));
}

std::string NormalizeUnicode(std::string_view text, NormalizationForm form) {
  int options = UTF8PROC_STABLE;
  switch (form) {
    case NormalizationForm::kNfc:
      options |= UTF8PROC_COMPOSE;
      break;
    case NormalizationForm::kNfd:
      options |= UTF8PROC_DECOMPOSE;
      break;
    case NormalizationForm::kNfkc:
      options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
      break;
    case NormalizationForm::kNfkd:
      options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
      break;
  }
  if (text.empty()) return std::string();
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                   static_cast<utf8proc_ssize_t>(text.size()), &result,
                   static_cast<utf8proc_option_t>(options));
  // The input was validated as UTF-8 before normalization, so utf8proc cannot reject it.
  MOE_CHECK(n >= 0) << "utf8proc_map: " << utf8proc_errmsg(n);
  std::string out(reinterpret_cast<const char*>(result), static_cast<size_t>(n));
  std::free(result);
  return out;
}

std::string_view Normalizer::Normalize(std::string_view text, std::string* scratch) const {
  std::string_view current = text;
  for (NormalizationForm form : forms_) {
    if (IsStable(current, form)) continue;
    std::string next = NormalizeUnicode(current, form);
    *scratch = std::move(next);
    current = *scratch;
  }
  return current;
}

}  // namespace moe::model
