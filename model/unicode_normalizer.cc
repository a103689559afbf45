#include "model/unicode_normalizer.h"

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <utf8proc.h>

#include "core/check.h"
#include "model/unicode_utf8.h"

namespace moe::model {
namespace {

constexpr char32_t kNumCodePoints = 0x110000;

bool IsHangulJamo(char32_t c) { return c >= 0x1100 && c <= 0x11FF; }
bool IsHangulSyllable(char32_t c) { return c >= 0xAC00 && c <= 0xD7A3; }

// Whether `form` may change `c` or let `c` change its neighbours. False only for characters that
// are left alone whatever surrounds them: starters (combining class 0) that can never be the
// second character of a composition, whose decomposition (of the kind the form applies) is
// absent or, for the composing forms, gives the character back. Text made only of such
// characters is already normalized (the Unicode quick-check argument).
bool MayChange(char32_t c, NormalizationForm form) {
  if (c < 0x80) return false;
  const bool compose = form == NormalizationForm::kNfc || form == NormalizationForm::kNfkc;
  const bool compat = form == NormalizationForm::kNfkc || form == NormalizationForm::kNfkd;
  if (IsHangulJamo(c)) return true;
  if (IsHangulSyllable(c)) return !compose;
  const utf8proc_property_t* p = utf8proc_get_property(static_cast<utf8proc_int32_t>(c));
  if (p->combining_class != 0 || p->comp_exclusion) return true;
  if (p->comb_index != UINT16_MAX && (p->comb_index & 0x8000)) return true;
  if (p->decomp_seqindex == UINT16_MAX) return false;
  const bool canonical = p->decomp_type == 0;
  if (!canonical && !compat) return false;
  if (!compose) return true;
  // A composing form keeps a character with a decomposition only when it recomposes to itself
  // (not a singleton, a non-starter decomposition, an exclusion or, for NFKC, compatibility).
  std::string alone;
  AppendUtf8(c, &alone);
  return NormalizeUnicode(alone, form) != alone;
}

// MayChange for every code point, computed once per form.
class UnstableSet {
 public:
  explicit UnstableSet(NormalizationForm form) : bits_(kNumCodePoints / 64, 0) {
    for (char32_t c = 0x80; c < kNumCodePoints; ++c) {
      if (MayChange(c, form)) bits_[c >> 6] |= uint64_t{1} << (c & 63);
    }
  }
  bool Contains(char32_t c) const { return (bits_[c >> 6] >> (c & 63)) & 1; }

 private:
  std::vector<uint64_t> bits_;
};

const UnstableSet& UnstableFor(NormalizationForm form) {
  switch (form) {
    case NormalizationForm::kNfc: {
      static const UnstableSet* set = new UnstableSet(NormalizationForm::kNfc);
      return *set;
    }
    case NormalizationForm::kNfd: {
      static const UnstableSet* set = new UnstableSet(NormalizationForm::kNfd);
      return *set;
    }
    case NormalizationForm::kNfkc: {
      static const UnstableSet* set = new UnstableSet(NormalizationForm::kNfkc);
      return *set;
    }
    case NormalizationForm::kNfkd:
      break;
  }
  static const UnstableSet* set = new UnstableSet(NormalizationForm::kNfkd);
  return *set;
}

bool IsStable(std::string_view text, NormalizationForm form) {
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  const UnstableSet* unstable = nullptr;
  size_t pos = 0;
  while (pos < n) {
    if (pos + 8 <= n) {
      uint64_t word;
      std::memcpy(&word, p + pos, 8);
      if ((word & 0x8080808080808080ULL) == 0) {
        pos += 8;
        continue;
      }
    }
    if (p[pos] < 0x80) {
      ++pos;
      continue;
    }
    if (unstable == nullptr) unstable = &UnstableFor(form);
    if (unstable->Contains(NextCodePoint(text, &pos))) return false;
  }
  return true;
}

StatusOr<NormalizationForm> ParseForm(const JsonField& field) {
  MOE_ASSIGN_OR_RETURN(std::string type, field.String("type"));
  if (type == "NFC") return NormalizationForm::kNfc;
  if (type == "NFD") return NormalizationForm::kNfd;
  if (type == "NFKC") return NormalizationForm::kNfkc;
  if (type == "NFKD") return NormalizationForm::kNfkd;
  return field.Child("type").Error("unsupported normalizer \"" + type +
                                   "\" (supported: NFC, NFD, NFKC, NFKD, Sequence)");
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
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
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
