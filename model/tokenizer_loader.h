// The model-directory hook: a model directory with tokenizer.json has a tokenizer (configured by
// tokenizer_config.json when present); one without serves token ids only.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "model/tokenizer.h"

namespace moe::model {

// The tokenizer of `model_dir`, or nullptr when the directory has no tokenizer.json. Errors: an
// unreadable file (NotFound / DataLoss) or malformed JSON (InvalidArgument naming the file and
// key), each prefixed with the file's path.
StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& model_dir);

}  // namespace moe::model
