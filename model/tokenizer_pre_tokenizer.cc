#include "model/tokenizer_pre_tokenizer.h"

#include "core/check.h"

namespace moe::model {
namespace {

// GPT-2's pattern, which Hugging Face's ByteLevel pre-tokenizer applies when use_regex is set.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Piece {
  size_t begin;
  size_t end;
  bool is_match;
};

StatusOr<SplitBehavior> ParseBehavior(const JsonField& field) {
  MOE_ASSIGN_OR_RETURN(std::string name, field.AsString());
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  return field.Error("unknown split behavior \"" + name + "\"");
}

Status ParseSplit(const JsonField& field, PreTokenizerStep* step) {
  const JsonField pattern = field.Child("pattern");
  MOE_RETURN_IF_ERROR(pattern.ExpectObject());
  bool literal;
  std::string text;
  if (pattern.Has("Regex")) {
    literal = false;
    MOE_ASSIGN_OR_RETURN(text, pattern.String("Regex"));
  } else if (pattern.Has("String")) {
    literal = true;
    MOE_ASSIGN_OR_RETURN(text, pattern.String("String"));
  } else {
    return pattern.Error("expected {\"Regex\": ...} or {\"String\": ...}");
  }
  auto regex = Regex::Compile(text, literal);
  if (!regex.ok()) return pattern.Error(StatusMessage(regex.status()));
  step->kind = PreTokenizerStep::Kind::kSplit;
  step->regex = std::move(regex).value();
  MOE_ASSIGN_OR_RETURN(step->behavior, ParseBehavior(field.Child("behavior")));
  MOE_ASSIGN_OR_RETURN(step->invert, field.BoolOr("invert", false));
  return OkStatus();
}

Status ParseInto(const JsonField& field, std::vector<PreTokenizerStep>* steps,
                 std::vector<std::string>* paths) {
  MOE_RETURN_IF_ERROR(field.ExpectObject());
  std::string type;
  MOE_ASSIGN_OR_RETURN(type, field.String("type"));
  if (type == "Sequence") {
    const JsonField list = field.Child("pretokenizers");
    MOE_RETURN_IF_ERROR(list.ExpectArray());
    for (size_t i = 0; i < list.value().size(); ++i) {
      MOE_RETURN_IF_ERROR(ParseInto(list.At(i), steps, paths));
    }
    return OkStatus();
  }
  PreTokenizerStep step;
  if (type == "Split") {
    MOE_RETURN_IF_ERROR(ParseSplit(field, &step));
  } else if (type == "ByteLevel") {
    step.kind = PreTokenizerStep::Kind::kByteLevel;
    MOE_ASSIGN_OR_RETURN(step.add_prefix_space, field.BoolOr("add_prefix_space", true));
    MOE_ASSIGN_OR_RETURN(step.use_regex, field.BoolOr("use_regex", true));
  } else if (type == "Digits") {
    // Hugging Face splits on char::is_numeric (\p{N}), each digit alone or runs merged.
    MOE_ASSIGN_OR_RETURN(bool individual, field.BoolOr("individual_digits", false));
    MOE_ASSIGN_OR_RETURN(step.regex, Regex::Compile(individual ? "\\p{N}" : "\\p{N}+", false));
    step.behavior = SplitBehavior::kIsolated;
  } else {
    return field.Child("type").Error("unsupported pre-tokenizer \"" + type +
                                     "\" (supported: Split, ByteLevel, Digits, Sequence)");
  }
  steps->push_back(std::move(step));
  paths->push_back(field.path());
  return OkStatus();
}

// Applies a delimiter behaviour to pieces that cover the text (Hugging Face
// NormalizedString::split); the result keeps only the pieces that survive, `is_match` unused.
std::vector<Piece> ApplyBehavior(const std::vector<Piece>& pieces, SplitBehavior behavior) {
  std::vector<Piece> out;
  out.reserve(pieces.size());
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      return pieces;
    case SplitBehavior::kRemoved:
      for (const Piece& p : pieces) {
        if (!p.is_match) out.push_back(p);
      }
      return out;
    case SplitBehavior::kContiguous:
      for (const Piece& p : pieces) {
        if (p.is_match == previous_match && !out.empty()) {
          out.back().end = p.end;
        } else {
          out.push_back(p);
        }
        previous_match = p.is_match;
      }
      return out;
    case SplitBehavior::kMergedWithPrevious:
      for (const Piece& p : pieces) {
        if (p.is_match && !previous_match && !out.empty()) {
          out.back().end = p.end;
        } else {
          out.push_back(p);
        }
        previous_match = p.is_match;
      }
      return out;
    case SplitBehavior::kMergedWithNext:
      for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back(*it);
        }
        previous_match = it->is_match;
      }
      return std::vector<Piece>(out.rbegin(), out.rend());
  }
  return out;
}

}  // namespace

PreTokenizer::PreTokenizer(std::vector<PreTokenizerStep> steps) : steps_(std::move(steps)) {
  for (const PreTokenizerStep& s : steps_) {
    if (s.kind != PreTokenizerStep::Kind::kByteLevel) continue;
    byte_level_ = true;
    if (s.add_prefix_space) words_view_input_ = false;
    if (s.use_regex && gpt2_regex_ == nullptr) {
      auto regex = Regex::Compile(kGpt2Pattern, false);
      MOE_CHECK(regex.ok()) << regex.status();
      gpt2_regex_ = std::move(regex).value();
    }
  }
}

StatusOr<PreTokenizer> PreTokenizer::FromJson(const JsonField& field) {
  if (field.is_null()) return PreTokenizer();
  std::vector<PreTokenizerStep> steps;
  std::vector<std::string> paths;
  MOE_RETURN_IF_ERROR(ParseInto(field, &steps, &paths));
  for (size_t i = 0; i + 1 < steps.size(); ++i) {
    if (steps[i].kind == PreTokenizerStep::Kind::kByteLevel) {
      return JsonField(field.value(), "tokenizer.json", paths[i])
          .Error("ByteLevel must be the last pre-tokenizer of a Sequence");
    }
  }
  return PreTokenizer(std::move(steps));
}

Status PreTokenizer::Split(std::string_view text,
                           absl::FunctionRef<void(std::string_view)> on_word) const {
  return RunStep(0, text, on_word);
}

Status PreTokenizer::RunStep(size_t step, std::string_view text,
                             absl::FunctionRef<void(std::string_view)> on_word) const {
  if (text.empty()) return OkStatus();
  if (step == steps_.size()) {
    on_word(text);
    return OkStatus();
  }
  const PreTokenizerStep& s = steps_[step];
  if (s.kind == PreTokenizerStep::Kind::kSplit) return RunSplit(s, step + 1, text, on_word);

  // ByteLevel: optional prefix space, optional GPT-2 split; the byte mapping is the model's.
  std::string prefixed;
  if (s.add_prefix_space && text[0] != ' ') {
    prefixed.reserve(text.size() + 1);
    prefixed.push_back(' ');
    prefixed.append(text);
    text = prefixed;
  }
  if (!s.use_regex) return RunStep(step + 1, text, on_word);
  Status status;
  MOE_RETURN_IF_ERROR(gpt2_regex_->ForEachMatch(text, [&](size_t begin, size_t end) {
    if (status.ok()) status = RunStep(step + 1, text.substr(begin, end - begin), on_word);
  }));
  return status;
}

Status PreTokenizer::RunSplit(const PreTokenizerStep& s, size_t next, std::string_view text,
                              absl::FunctionRef<void(std::string_view)> on_word) const {
  Status status;
  auto emit = [&](size_t begin, size_t end) {
    if (status.ok() && begin < end) {
      status = RunStep(next, text.substr(begin, end - begin), on_word);
    }
  };
  if (s.behavior == SplitBehavior::kIsolated) {
    // Every match and every gap is its own piece, whatever `invert` says: stream them.
    size_t previous = 0;
    MOE_RETURN_IF_ERROR(s.regex->ForEachMatch(text, [&](size_t begin, size_t end) {
      if (previous != begin) emit(previous, begin);
      emit(begin, end);
      previous = end;
    }));
    if (previous != text.size()) emit(previous, text.size());
    return status;
  }
  std::vector<Piece> pieces;
  size_t previous = 0;
  MOE_RETURN_IF_ERROR(s.regex->ForEachMatch(text, [&](size_t begin, size_t end) {
    if (previous != begin) pieces.push_back({previous, begin, s.invert});
    pieces.push_back({begin, end, !s.invert});
    previous = end;
  }));
  if (previous != text.size()) pieces.push_back({previous, text.size(), s.invert});
  for (const Piece& p : ApplyBehavior(pieces, s.behavior)) emit(p.begin, p.end);
  return status;
}

}  // namespace moe::model
