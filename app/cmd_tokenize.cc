// `moeserve tokenize` and `moeserve detokenize`: text <-> ids with a model directory's tokenizer,
// plus a single-thread throughput measurement (`tokenize --bench SECONDS`) used by
// bench/tokenizer/.
#include <charconv>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "core/clock.h"
#include "model/tokenizer_loader.h"

namespace moe::app {
namespace {

struct TokenizeOptions {
  std::string model_dir;
  std::vector<std::string> texts;
  std::string file;
  std::string jsonl;
  bool no_special_tokens = false;
  bool split_special_tokens = false;
  double bench_seconds = 0;
};

struct DetokenizeOptions {
  std::string model_dir;
  std::string ids;
  std::string jsonl;
  bool skip_special_tokens = false;
  bool json = false;
};

StatusOr<std::unique_ptr<model::Tokenizer>> OpenTokenizer(const std::string& model_dir) {
  MOE_ASSIGN_OR_RETURN(auto tokenizer, model::LoadTokenizer(model_dir));
  if (tokenizer == nullptr) {
    return NotFound(model_dir, ": no tokenizer.json (this model serves token ids only)");
  }
  return tokenizer;
}

// The lines of a file, without their '\n'.
StatusOr<std::vector<std::string>> ReadLines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path, ": cannot open");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  if (in.bad()) return DataLoss(path, ": read failed");
  return lines;
}

// One JSON value per non-empty line.
StatusOr<std::vector<nlohmann::json>> ReadJsonLines(const std::string& path) {
  MOE_ASSIGN_OR_RETURN(std::vector<std::string> lines, ReadLines(path));
  std::vector<nlohmann::json> values;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    nlohmann::json value = nlohmann::json::parse(lines[i], nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) return InvalidArgument(path, ":", i + 1, ": not valid JSON");
    values.push_back(std::move(value));
  }
  return values;
}

StatusOr<std::vector<std::string>> GatherTexts(const TokenizeOptions& o) {
  std::vector<std::string> texts = o.texts;
  if (!o.file.empty()) {
    MOE_ASSIGN_OR_RETURN(std::vector<std::string> lines, ReadLines(o.file));
    texts.insert(texts.end(), lines.begin(), lines.end());
  }
  if (!o.jsonl.empty()) {
    MOE_ASSIGN_OR_RETURN(std::vector<nlohmann::json> values, ReadJsonLines(o.jsonl));
    for (size_t i = 0; i < values.size(); ++i) {
      if (!values[i].is_string()) {
        return InvalidArgument(o.jsonl, ": entry ", i + 1, ": expected a JSON string");
      }
      texts.push_back(values[i].get<std::string>());
    }
  }
  if (texts.empty()) return InvalidArgument("give --text, --file or --jsonl");
  return texts;
}

std::string IdsJson(const std::vector<int32_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out += ",";
    out += std::to_string(ids[i]);
  }
  return out + "]";
}

// Encodes and decodes every text repeatedly on this thread for at least `seconds` each, after one
// warm-up pass, and prints the throughput as one JSON object.
Status Bench(const model::Tokenizer& tokenizer, const std::vector<std::string>& texts,
             const model::EncodeOptions& options, double seconds) {
  size_t bytes = 0;
  for (const std::string& t : texts) bytes += t.size();
  std::vector<std::vector<int32_t>> ids(texts.size());
  size_t tokens = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    MOE_RETURN_IF_ERROR(tokenizer.Encode(texts[i], options, &ids[i]));
    tokens += ids[i].size();
  }
  int encode_passes = 0;
  Stopwatch watch;
  std::vector<int32_t> scratch;
  do {
    for (const std::string& t : texts) {
      scratch.clear();
      MOE_RETURN_IF_ERROR(tokenizer.Encode(t, options, &scratch));
    }
    ++encode_passes;
  } while (watch.ElapsedSeconds() < seconds);
  const double encode_s = watch.ElapsedSeconds();
  int decode_passes = 0;
  size_t decoded_bytes = 0;
  watch.Reset();
  do {
    for (const std::vector<int32_t>& v : ids) decoded_bytes += tokenizer.Decode(v).size();
    ++decode_passes;
  } while (watch.ElapsedSeconds() < seconds);
  const double decode_s = watch.ElapsedSeconds();
  nlohmann::ordered_json j;
  j["implementation"] = "moeserve";
  j["texts"] = texts.size();
  j["bytes"] = bytes;
  j["tokens"] = tokens;
  j["encode_mb_per_s"] = static_cast<double>(bytes) * encode_passes / encode_s / 1e6;
  j["decode_mb_per_s"] = static_cast<double>(decoded_bytes) / decode_s / 1e6;
  j["encode_passes"] = encode_passes;
  j["decode_passes"] = decode_passes;
  std::cout << j.dump() << "\n";
  return OkStatus();
}

Status RunTokenize(const TokenizeOptions& o) {
  MOE_ASSIGN_OR_RETURN(std::vector<std::string> texts, GatherTexts(o));
  MOE_ASSIGN_OR_RETURN(auto tokenizer, OpenTokenizer(o.model_dir));
  model::EncodeOptions options;
  options.add_special_tokens = !o.no_special_tokens;
  if (o.split_special_tokens) options.split_special_tokens = true;
  if (o.bench_seconds > 0) return Bench(*tokenizer, texts, options, o.bench_seconds);
  std::vector<int32_t> ids;
  for (size_t i = 0; i < texts.size(); ++i) {
    ids.clear();
    const Status status = tokenizer->Encode(texts[i], options, &ids);
    if (!status.ok()) return Annotate(status, absl::StrCat("text ", i + 1));
    std::cout << IdsJson(ids) << "\n";
  }
  return OkStatus();
}

// "1,2,3", "1 2 3" or "[1, 2, 3]".
StatusOr<std::vector<int32_t>> ParseIds(const std::string& text) {
  std::vector<int32_t> ids;
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    if (*p == ',' || *p == ' ' || *p == '[' || *p == ']' || *p == '\n' || *p == '\t') {
      ++p;
      continue;
    }
    int64_t id = 0;
    const auto [next, ec] = std::from_chars(p, end, id);
    if (ec != std::errc() || id < INT32_MIN || id > INT32_MAX) {
      return InvalidArgument("--ids: '", std::string(p, end), "' is not a list of token ids");
    }
    ids.push_back(static_cast<int32_t>(id));
    p = next;
  }
  return ids;
}

Status RunDetokenize(const DetokenizeOptions& o) {
  std::vector<std::vector<int32_t>> lists;
  if (!o.ids.empty()) {
    MOE_ASSIGN_OR_RETURN(std::vector<int32_t> ids, ParseIds(o.ids));
    lists.push_back(std::move(ids));
  }
  if (!o.jsonl.empty()) {
    MOE_ASSIGN_OR_RETURN(std::vector<nlohmann::json> values, ReadJsonLines(o.jsonl));
    for (size_t i = 0; i < values.size(); ++i) {
      std::vector<int32_t> ids;
      bool ok = values[i].is_array();
      for (const nlohmann::json& v : values[i]) {
        ok = ok && v.is_number_integer();
        if (ok) ids.push_back(v.get<int32_t>());
      }
      if (!ok) return InvalidArgument(o.jsonl, ": entry ", i + 1, ": expected an array of ids");
      lists.push_back(std::move(ids));
    }
  }
  if (lists.empty()) return InvalidArgument("give --ids or --jsonl");
  MOE_ASSIGN_OR_RETURN(auto tokenizer, OpenTokenizer(o.model_dir));
  model::DecodeOptions options;
  options.skip_special_tokens = o.skip_special_tokens;
  const bool json = o.json || !o.jsonl.empty();
  for (const std::vector<int32_t>& ids : lists) {
    const std::string text = tokenizer->Decode(ids, options);
    std::cout << (json ? nlohmann::json(text).dump() : text) << "\n";
  }
  return OkStatus();
}

}  // namespace

Action RegisterTokenize(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "tokenize", "Print the token ids of each text as a JSON array on its own line");
  cmd->add_option("--model", o->model_dir, "model directory with tokenizer.json")->required();
  cmd->add_option("--text", o->texts, "text to encode (repeatable)");
  cmd->add_option("--file", o->file, "file with one text per line");
  cmd->add_option("--jsonl", o->jsonl, "file with one JSON string per line (texts with newlines)");
  cmd->add_flag("--no-special-tokens", o->no_special_tokens,
                "do not add the post-processor's special tokens (bos/eos templates)");
  cmd->add_flag("--split-special-tokens", o->split_special_tokens,
                "encode special tokens written in the text as plain text");
  cmd->add_option("--bench", o->bench_seconds,
                  "instead of printing ids, measure single-thread encode and decode MB/s for at "
                  "least this many seconds each")
      ->check(CLI::NonNegativeNumber);
  return [o]() {
    const Status status = RunTokenize(*o);
    if (!status.ok()) {
      std::cerr << "moeserve tokenize: " << status.message() << "\n";
      return 1;
    }
    return 0;
  };
}

Action RegisterDetokenize(CLI::App& app) {
  auto o = std::make_shared<DetokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("detokenize", "Print the text of token ids");
  cmd->add_option("--model", o->model_dir, "model directory with tokenizer.json")->required();
  cmd->add_option("--ids", o->ids, "token ids: 1,2,3");
  cmd->add_option("--jsonl", o->jsonl,
                  "file with one JSON array of ids per line; prints one JSON string per line");
  cmd->add_flag("--skip-special-tokens", o->skip_special_tokens, "leave special tokens out");
  cmd->add_flag("--json", o->json, "print the text as a JSON string");
  return [o]() {
    const Status status = RunDetokenize(*o);
    if (!status.ok()) {
      std::cerr << "moeserve detokenize: " << status.message() << "\n";
      return 1;
    }
    return 0;
  };
}

}  // namespace moe::app
