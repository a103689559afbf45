// The tokenizer.json `normalizer`: Unicode normalization forms (NFC, NFD, NFKC, NFKD) through
// utf8proc, and Sequence of them. Text that a form leaves unchanged (ASCII, and for NFC any text
// without combining marks, decomposable or composable characters) is detected by a quick check
// and passed through without copying.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model/tokenizer_json_field.h"

namespace moe::model {

enum class NormalizationForm { kNfc, kNfd, kNfkc, kNfkd };

class Normalizer {
 public:
  // The identity normalizer (tokenizer.json `"normalizer": null`).
  Normalizer() = default;
  explicit Normalizer(std::vector<NormalizationForm> forms) : forms_(std::move(forms)) {}

  // Parses a tokenizer.json normalizer object (or null). Errors name the offending key.
  static StatusOr<Normalizer> FromJson(const JsonField& field);

  bool is_identity() const { return forms_.empty(); }

  // Normalizes valid UTF-8. The result views either `text` itself (unchanged) or `*scratch`.
  std::string_view Normalize(std::string_view text, std::string* scratch) const;

 private:
  std::vector<NormalizationForm> forms_;  // applied in order
};

// Applies one normalization form to valid UTF-8 (no quick check).
std::string NormalizeUnicode(std::string_view text, NormalizationForm form);

}  // namespace moe::model
