// A small byte-level BPE tokenizer.json for the tokenizer unit tests: the 256 byte symbols as ids
// 0..255, a handful of merges, and added tokens, with every section overridable.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/byte_level_mapping.h"

namespace moe::model::testing {

// Merges in rank order; each merged token gets the next id after the byte symbols.
inline std::vector<std::pair<std::string, std::string>> TinyMerges() {
  return {{"h", "e"},   {"l", "l"},   {"he", "ll"}, {"hell", "o"},  {"Ġ", "w"},
          {"o", "r"},   {"Ġw", "or"}, {"l", "d"},   {"Ġwor", "ld"}, {"Ġ", "Ġ"},
          {"ĠĠ", "ĠĠ"}, {"a", "a"},   {"aa", "a"},  {"1", "2"},     {"Ġ", "t"}};
}

inline nlohmann::json TinyTokenizerJson() {
  using nlohmann::json;
  json vocab = json::object();
  int next = 0;
  for (int b = 0; b < 256; ++b) {
    vocab[std::string(ByteLevelMapping::ByteToChars(static_cast<uint8_t>(b)))] = next++;
  }
  json merges = json::array();
  for (const auto& [a, b] : TinyMerges()) {
    if (!vocab.contains(a + b)) vocab[a + b] = next++;
    merges.push_back(json::array({a, b}));
  }
  auto added = [](int id, const char* content, bool special) {
    return json{{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
                {"rstrip", false}, {"normalized", false}, {"special", special}};
  };
  json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = json::array({added(next, "<|end|>", true), added(next + 1, "<x>", false)});
  j["normalizer"] = {{"type", "NFC"}};
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       json::array({{{"type", "Split"},
                     {"pattern",
                      {{"Regex",
                        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                        "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}}},
                     {"behavior", "Isolated"},
                     {"invert", false}},
                    {{"type", "ByteLevel"},
                     {"add_prefix_space", false},
                     {"trim_offsets", false},
                     {"use_regex", false}}})}};
  j["post_processor"] = {{"type", "ByteLevel"},
                         {"add_prefix_space", false},
                         {"trim_offsets", false},
                         {"use_regex", false}};
  j["decoder"] = {{"type", "ByteLevel"},
                  {"add_prefix_space", false},
                  {"trim_offsets", false},
                  {"use_regex", false}};
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", ""},
                {"end_of_word_suffix", ""},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", false},
                {"vocab", vocab},
                {"merges", merges}};
  return j;
}

// The id of a token of TinyTokenizerJson's vocabulary or added tokens.
inline int TinyId(const nlohmann::json& j, const std::string& token) {
  for (const auto& a : j["added_tokens"]) {
    if (a["content"] == token) return a["id"].get<int>();
  }
  return j["model"]["vocab"][token].get<int>();
}

}  // namespace moe::model::testing
