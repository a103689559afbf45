#include "bench/serve/workload.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>

#include <nlohmann/json.hpp>

#include "model/tokenizer.h"

namespace moe::bench {

namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

StatusOr<std::vector<std::string>> ReadLines(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("--dataset-path: cannot open '", path, "'");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
  }
  return lines;
}

int EstimateTokens(const std::string& text) {
  return std::max(1, static_cast<int>((text.size() + 3) / 4));
}

}  // namespace

std::pair<int, int> RangeRatioBounds(int length, double ratio) {
  return {static_cast<int>(std::floor(length * (1.0 - ratio))),
          static_cast<int>(std::ceil(length * (1.0 + ratio)))};
}

Status WorkloadOptions::Validate() const {
  static const char* kNames[] = {"random", "clustered", "sharegpt", "text", "trace"};
  if (std::find(std::begin(kNames), std::end(kNames), dataset_name) == std::end(kNames)) {
    return InvalidArgument(
        "--dataset-name must be random, clustered, sharegpt, text or trace, got '", dataset_name,
        "'");
  }
  const bool file = dataset_name == "sharegpt" || dataset_name == "text" || dataset_name == "trace";
  if (file && dataset_path.empty()) {
    return InvalidArgument("--dataset-name ", dataset_name, " needs --dataset-path FILE");
  }
  if (!(random_range_ratio >= 0 && random_range_ratio < 1)) {
    return InvalidArgument("--random-range-ratio must be in [0, 1), got ", random_range_ratio);
  }
  if (random_input_len < 0 || random_output_len < 1 || random_prefix_len < 0) {
    return InvalidArgument(
        "--random-input-len must be >= 0, --random-output-len >= 1, --random-prefix-len >= 0");
  }
  if (random_input_len + random_prefix_len < 1) {
    return InvalidArgument("--random-input-len + --random-prefix-len must be >= 1");
  }
  if (trace_block_size < 1) return InvalidArgument("--trace-block-size must be >= 1");
  if (custom_output_len < 1) return InvalidArgument("--custom-output-len must be >= 1");
  if (sharegpt_output_len < 0) return InvalidArgument("--sharegpt-output-len must be >= 0");
  for (double w : cluster_weights) {
    if (!(w >= 0) || !std::isfinite(w)) {
      return InvalidArgument("--cluster-weights must be finite values >= 0");
    }
  }
  return OkStatus();
}

void Workload::FillPrompt(const RequestSpec& spec, std::vector<int32_t>* out) const {
  out->clear();
  switch (spec.source) {
    case RequestSpec::Source::kRandom: {
      out->reserve(prefix_.size() + spec.body_len);
      out->insert(out->end(), prefix_.begin(), prefix_.end());
      const int64_t n = static_cast<int64_t>(allowed_.size());
      for (int32_t j = 0; j < spec.body_len; ++j) out->push_back(allowed_[(spec.offset + j) % n]);
      return;
    }
    case RequestSpec::Source::kCluster: {
      const int64_t lo = static_cast<int64_t>(spec.cluster) * vocab_size_ / num_clusters_;
      const int64_t hi = static_cast<int64_t>(spec.cluster + 1) * vocab_size_ / num_clusters_;
      const uint64_t width = static_cast<uint64_t>(std::max<int64_t>(hi - lo, 1));
      out->reserve(spec.body_len);
      uint64_t state = static_cast<uint64_t>(spec.offset);
      for (int32_t j = 0; j < spec.body_len; ++j) {
        int32_t token;
        int tries = 0;
        do {
          state = SplitMix64(state);
          token = static_cast<int32_t>(lo + static_cast<int64_t>(state % width));
        } while (special_[token] && ++tries < 16);
        out->push_back(token);
      }
      return;
    }
    case RequestSpec::Source::kTokens:
      *out = spec.tokens;
      return;
    case RequestSpec::Source::kText:
      return;
    case RequestSpec::Source::kBlocks: {
      out->reserve(spec.body_len);
      const uint64_t n = allowed_.size();
      for (size_t b = 0;
           b < spec.hash_ids.size() && static_cast<int32_t>(out->size()) < spec.body_len; ++b) {
        uint64_t state = SplitMix64(seed_ ^ SplitMix64(static_cast<uint64_t>(spec.hash_ids[b])));
        for (int j = 0; j < block_size_ && static_cast<int32_t>(out->size()) < spec.body_len; ++j) {
          state = SplitMix64(state);
          out->push_back(allowed_[state % n]);
        }
      }
      return;
    }
  }
}

// Fills a Workload's private state (a friend of Workload).
struct WorkloadBuilder {
  const WorkloadOptions& o;
  const ModelFacts& facts;
  const model::Tokenizer* tokenizer;
  Workload* w;
  std::mt19937_64 rng;

  int64_t Count(int64_t available) const { return o.num_prompts > 0 ? o.num_prompts : available; }

  // Lengths per vLLM's RandomDataset.
  void RandomLengths(int64_t n, std::vector<int>* in, std::vector<int>* out) {
    auto [in_lo, in_hi] = RangeRatioBounds(o.random_input_len, o.random_range_ratio);
    auto [out_lo, out_hi] = RangeRatioBounds(o.random_output_len, o.random_range_ratio);
    out_lo = std::max(out_lo, 1);
    // An empty prompt is invalid: without a prefix the body has at least one token.
    if (o.random_prefix_len == 0) in_lo = std::max(in_lo, 1);
    in_hi = std::max(in_hi, in_lo);
    std::uniform_int_distribution<int> in_dist(in_lo, in_hi);
    std::uniform_int_distribution<int> out_dist(out_lo, out_hi);
    in->resize(n);
    out->resize(n);
    for (int64_t i = 0; i < n; ++i) (*in)[i] = in_dist(rng);
    for (int64_t i = 0; i < n; ++i) (*out)[i] = out_dist(rng);
  }

  Status Random() {
    const int64_t n = Count(1000);
    std::vector<int> in, out;
    RandomLengths(n, &in, &out);
    std::uniform_int_distribution<int64_t> offset_dist(0, facts.vocab_size - 1);
    std::uniform_int_distribution<size_t> token_dist(0, w->allowed_.size() - 1);
    for (int i = 0; i < o.random_prefix_len; ++i)
      w->prefix_.push_back(w->allowed_[token_dist(rng)]);
    w->specs_.resize(n);
    for (int64_t i = 0; i < n; ++i) {
      RequestSpec& s = w->specs_[i];
      s.source = RequestSpec::Source::kRandom;
      s.offset = offset_dist(rng) + i;
      s.body_len = in[i];
      s.prompt_len = o.random_prefix_len + in[i];
      s.output_len = out[i];
      s.ignore_eos = true;
    }
    return OkStatus();
  }

  Status Clustered() {
    const int clusters = o.num_clusters > 0 ? o.num_clusters : facts.expert_clusters;
    if (clusters <= 0) {
      return InvalidArgument(
          "--dataset-name clustered: the model reports no expert clusters (generate it with "
          "`moeserve generate-model --clusters C`) and --num-clusters is not given");
    }
    if (clusters > facts.vocab_size) {
      return InvalidArgument("--num-clusters ", clusters, " exceeds the vocabulary (",
                             facts.vocab_size, ")");
    }
    std::vector<double> weights = o.cluster_weights;
    if (weights.empty()) weights.assign(clusters, 1.0);
    if (static_cast<int>(weights.size()) != clusters) {
      return InvalidArgument("--cluster-weights has ", weights.size(), " values for ", clusters,
                             " clusters");
    }
    if (std::accumulate(weights.begin(), weights.end(), 0.0) <= 0) {
      return InvalidArgument("--cluster-weights must not all be 0");
    }
    w->num_clusters_ = clusters;
    const int64_t n = Count(1000);
    std::vector<int> in, out;
    RandomLengths(n, &in, &out);
    std::discrete_distribution<int> pick(weights.begin(), weights.end());
    w->specs_.resize(n);
    for (int64_t i = 0; i < n; ++i) {
      RequestSpec& s = w->specs_[i];
      s.source = RequestSpec::Source::kCluster;
      s.cluster = pick(rng);
      s.offset = static_cast<int64_t>(rng() >> 1);
      s.body_len = std::max(in[i] + o.random_prefix_len, 1);
      s.prompt_len = s.body_len;
      s.output_len = out[i];
      s.ignore_eos = true;
    }
    return OkStatus();
  }

  // A prompt from text: tokenized when a tokenizer is given, otherwise sent as text.
  Status TextSpec(const std::string& text, RequestSpec* s) {
    if (tokenizer != nullptr) {
      MOE_ASSIGN_OR_RETURN(s->tokens, tokenizer->Encode(text));
      s->source = RequestSpec::Source::kTokens;
      s->prompt_len = static_cast<int32_t>(s->tokens.size());
    } else {
      s->source = RequestSpec::Source::kText;
      s->text = text;
      s->prompt_len = EstimateTokens(text);
      w->has_text_ = true;
    }
    return OkStatus();
  }

  int CountTokens(const std::string& text) const {
    if (tokenizer == nullptr) return EstimateTokens(text);
    auto ids = tokenizer->Encode(text);
    return ids.ok() ? static_cast<int>(ids->size()) : EstimateTokens(text);
  }

  Status ShareGpt() {
    std::ifstream in(o.dataset_path);
    if (!in) return NotFound("--dataset-path: cannot open '", o.dataset_path, "'");
    nlohmann::json data = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!data.is_array()) {
      return InvalidArgument("--dataset-path '", o.dataset_path,
                             "': not a ShareGPT JSON array of {\"conversations\": [...]}");
    }
    std::vector<size_t> order(data.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    const int64_t want = o.num_prompts > 0 ? o.num_prompts : static_cast<int64_t>(data.size());
    for (size_t idx : order) {
      if (static_cast<int64_t>(w->specs_.size()) >= want) break;
      const nlohmann::json& entry = data[idx];
      if (!entry.is_object() || !entry.contains("conversations")) continue;
      const nlohmann::json& conv = entry["conversations"];
      if (!conv.is_array() || conv.size() < 2) continue;
      if (!conv[0].contains("value") || !conv[1].contains("value") ||
          !conv[0]["value"].is_string() || !conv[1]["value"].is_string()) {
        continue;
      }
      const std::string prompt = conv[0]["value"].get<std::string>();
      const std::string reply = conv[1]["value"].get<std::string>();
      RequestSpec s;
      MOE_RETURN_IF_ERROR(TextSpec(prompt, &s));
      const int out_len = o.sharegpt_output_len > 0 ? o.sharegpt_output_len : CountTokens(reply);
      // vLLM's is_valid_sequence (the output bound only when the length comes from the data).
      if (s.prompt_len < 4 || (o.sharegpt_output_len == 0 && out_len < 4)) continue;
      if (s.prompt_len > 1024 || s.prompt_len + out_len > 2048) continue;
      s.output_len = out_len;
      s.ignore_eos = o.ignore_eos || o.sharegpt_output_len > 0;
      w->specs_.push_back(std::move(s));
    }
    if (w->specs_.empty()) {
      return InvalidArgument("--dataset-path '", o.dataset_path,
                             "': no conversation passes the ShareGPT filters");
    }
    return OkStatus();
  }

  Status Text() {
    MOE_ASSIGN_OR_RETURN(std::vector<std::string> lines, ReadLines(o.dataset_path));
    std::vector<RequestSpec> base;
    for (size_t i = 0; i < lines.size(); ++i) {
      const std::string& line = lines[i];
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      std::string prompt = line;
      int out_len = o.custom_output_len;
      if (line[line.find_first_not_of(" \t")] == '{') {
        nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string()) {
          return InvalidArgument("--dataset-path '", o.dataset_path, "' line ", i + 1,
                                 ": a JSON line needs a string \"prompt\"");
        }
        prompt = j["prompt"].get<std::string>();
        if (j.contains("output_tokens") && j["output_tokens"].is_number_integer()) {
          out_len = std::max(1, j["output_tokens"].get<int>());
        }
      }
      RequestSpec s;
      MOE_RETURN_IF_ERROR(TextSpec(prompt, &s));
      s.output_len = out_len;
      s.ignore_eos = o.ignore_eos;
      base.push_back(std::move(s));
    }
    if (base.empty()) return InvalidArgument("--dataset-path '", o.dataset_path, "' has no prompt");
    const int64_t n = Count(static_cast<int64_t>(base.size()));
    for (int64_t i = 0; i < n; ++i) w->specs_.push_back(base[i % base.size()]);
    return OkStatus();
  }

  Status Trace() {
    MOE_ASSIGN_OR_RETURN(std::vector<std::string> lines, ReadLines(o.dataset_path));
    w->trace_ = true;
    double first = -1;
    for (size_t i = 0; i < lines.size(); ++i) {
      if (lines[i].find_first_not_of(" \t") == std::string::npos) continue;
      if (o.num_prompts > 0 && static_cast<int64_t>(w->specs_.size()) >= o.num_prompts) break;
      auto fail = [&](const char* what) {
        return InvalidArgument("--dataset-path '", o.dataset_path, "' line ", i + 1, ": ", what);
      };
      nlohmann::json j = nlohmann::json::parse(lines[i], nullptr, /*allow_exceptions=*/false);
      if (!j.is_object()) return fail("not a JSON object");
      if (!j.contains("input_length") || !j["input_length"].is_number_integer() ||
          j["input_length"].get<int64_t>() < 1) {
        return fail("needs an integer \"input_length\" >= 1");
      }
      if (!j.contains("output_length") || !j["output_length"].is_number_integer() ||
          j["output_length"].get<int64_t>() < 1) {
        return fail("needs an integer \"output_length\" >= 1");
      }
      RequestSpec s;
      s.source = RequestSpec::Source::kBlocks;
      s.body_len = j["input_length"].get<int32_t>();
      s.prompt_len = s.body_len;
      s.output_len = j["output_length"].get<int32_t>();
      s.ignore_eos = true;
      const int64_t blocks = (s.body_len + o.trace_block_size - 1) / o.trace_block_size;
      if (j.contains("hash_ids")) {
        if (!j["hash_ids"].is_array()) return fail("\"hash_ids\" must be an array of integers");
        for (const auto& h : j["hash_ids"]) {
          if (!h.is_number_integer()) return fail("\"hash_ids\" must be an array of integers");
          s.hash_ids.push_back(h.get<int64_t>());
        }
      }
      // Blocks the trace does not name are unique to this request.
      for (int64_t b = static_cast<int64_t>(s.hash_ids.size()); b < blocks; ++b) {
        s.hash_ids.push_back(-1 - static_cast<int64_t>(w->specs_.size()) * 1000003 - b);
      }
      if (j.contains("timestamp")) {
        if (!j["timestamp"].is_number()) return fail("\"timestamp\" must be a number (ms)");
        const double t = j["timestamp"].get<double>() / 1000.0;
        if (first < 0) first = t;
        s.timestamp_s = std::max(0.0, t - first);
      } else {
        return fail("needs a \"timestamp\" (ms)");
      }
      w->specs_.push_back(std::move(s));
    }
    if (w->specs_.empty()) return InvalidArgument("--dataset-path '", o.dataset_path, "' is empty");
    // Replay in time order.
    std::stable_sort(
        w->specs_.begin(), w->specs_.end(),
        [](const RequestSpec& a, const RequestSpec& b) { return a.timestamp_s < b.timestamp_s; });
    return OkStatus();
  }
};

StatusOr<Workload> BuildWorkload(const WorkloadOptions& options, const ModelFacts& facts,
                                 const model::Tokenizer* tokenizer) {
  MOE_RETURN_IF_ERROR(options.Validate());
  if (facts.vocab_size <= 0) return InvalidArgument("the model reports no vocabulary size");
  Workload w;
  w.vocab_size_ = facts.vocab_size;
  w.seed_ = options.seed;
  w.block_size_ = options.trace_block_size;
  w.special_.assign(facts.vocab_size, false);
  for (int id : facts.eos_token_ids) {
    if (id >= 0 && id < facts.vocab_size) w.special_[id] = true;
  }
  if (facts.bos_token_id >= 0 && facts.bos_token_id < facts.vocab_size) {
    w.special_[facts.bos_token_id] = true;
  }
  for (int id = 0; id < facts.vocab_size; ++id) {
    if (!w.special_[id]) w.allowed_.push_back(id);
  }
  if (w.allowed_.empty()) return InvalidArgument("the vocabulary has only special tokens");
  WorkloadBuilder b{options, facts, tokenizer, &w, std::mt19937_64(options.seed)};
  const std::string& name = options.dataset_name;
  if (name == "random") {
    MOE_RETURN_IF_ERROR(b.Random());
  } else if (name == "clustered") {
    MOE_RETURN_IF_ERROR(b.Clustered());
  } else if (name == "sharegpt") {
    MOE_RETURN_IF_ERROR(b.ShareGpt());
  } else if (name == "text") {
    MOE_RETURN_IF_ERROR(b.Text());
  } else {
    MOE_RETURN_IF_ERROR(b.Trace());
  }
  if (options.ignore_eos) {
    for (RequestSpec& s : w.specs_) s.ignore_eos = true;
  }
  if (w.specs_.empty()) return InvalidArgument("the workload has no requests (--num-prompts)");
  if (facts.max_context > 0) {
    for (const RequestSpec& s : w.specs_) {
      if (s.source != RequestSpec::Source::kText &&
          s.prompt_len + s.output_len > facts.max_context) {
        return InvalidArgument("a request of ", s.prompt_len, " prompt + ", s.output_len,
                               " output tokens exceeds the model's context of ", facts.max_context,
                               " tokens (lower the lengths or --random-range-ratio)");
      }
    }
  }
  return w;
}

}  // namespace moe::bench
