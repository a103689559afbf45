// Workload generation for `moeserve bench serve`: the requests of a run, built once before it
// starts from the model's facts (GetModelInfo) and the dataset options.
//
// Datasets (vLLM `bench serve` conventions where they exist):
//   random     prompt lengths uniform in [floor(L(1-r)), ceil(L(1+r))] for --random-input-len L and
//              --random-range-ratio r (output lengths likewise, at least 1), a shared random prefix
//              of --random-prefix-len tokens, token ids (offset + i + j) mod |allowed| over the
//              vocabulary minus the special ids; fixed lengths, so ignore_eos.
//   clustered  lengths as `random`; each prompt drawn from one domain cluster c of the
//              expert-specialised model (vocab range [c V/C, (c+1) V/C)), clusters picked by
//              --cluster-weights (uniform by default); ignore_eos.
//   sharegpt   ShareGPT-format JSON (first human turn = prompt, first reply's length = output
//              length unless --sharegpt-output-len), vLLM's filters (prompt and output >= 4 tokens,
//              prompt <= 1024, prompt + output <= 2048). Token counts come from --tokenizer;
//              without one prompts go out as text and lengths are estimated as chars / 4.
//   text       prompts from a file (one per line, or JSONL with "prompt"), --custom-output-len.
//   trace      JSONL replay: {"timestamp": ms, "input_length", "output_length", optional
//              "hash_ids"} (Mooncake / aiperf trace format): requests go out at their timestamps;
//              each hash id is a --trace-block-size block of deterministic tokens, so requests
//              sharing ids share prefixes; ignore_eos.
// Generated prompts are not stored: a spec keeps what determines its tokens and FillPrompt
// regenerates them at send time, so a long run costs no memory per request.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace moe::model {
class Tokenizer;
}

namespace moe::bench {

// What the harness needs to know about the served model (from GetModelInfo).
struct ModelFacts {
  std::string served_model_name;
  int vocab_size = 0;
  std::vector<int> eos_token_ids;
  int bos_token_id = -1;
  int expert_clusters = 0;
  int max_context = 0;
  bool has_tokenizer = false;
};

struct WorkloadOptions {
  std::string dataset_name = "random";  // random | clustered | sharegpt | text | trace
  std::string dataset_path;
  int64_t num_prompts = 1000;
  uint64_t seed = 0;
  int random_input_len = 1024;
  int random_output_len = 128;
  double random_range_ratio = 0.0;
  int random_prefix_len = 0;
  int sharegpt_output_len = 0;          // 0 = the dataset's reply length
  int custom_output_len = 256;          // text dataset
  int num_clusters = 0;                 // clustered: 0 = the model's expert_clusters
  std::vector<double> cluster_weights;  // clustered: relative weights (default uniform)
  int trace_block_size = 512;           // trace: tokens per hash id
  bool ignore_eos = false;  // force ignore_eos on every request (fixed-length datasets always)

  Status Validate() const;
};

struct RequestSpec {
  enum class Source { kRandom, kCluster, kTokens, kText, kBlocks };
  Source source = Source::kRandom;
  int32_t prompt_len = 0;  // prompt tokens (an estimate for text prompts without a tokenizer)
  int32_t output_len = 0;  // max_tokens
  int32_t body_len = 0;    // kRandom / kCluster / kBlocks: generated tokens after the prefix
  int64_t offset = 0;      // kRandom: vLLM's offset + index; kCluster: the token seed
  int cluster = -1;        // kCluster
  bool ignore_eos = false;
  double timestamp_s = -1;        // trace replay: send time relative to the first request
  std::vector<int32_t> tokens;    // kTokens
  std::vector<int64_t> hash_ids;  // kBlocks: [ceil(body_len / block)]
  std::string text;               // kText
};

class Workload {
 public:
  int64_t size() const { return static_cast<int64_t>(specs_.size()); }
  // Request i of a run; runs longer than the dataset cycle through it.
  const RequestSpec& spec(int64_t i) const { return specs_[static_cast<size_t>(i % size())]; }
  const std::vector<RequestSpec>& specs() const { return specs_; }
  bool is_trace() const { return trace_; }
  bool has_text() const { return has_text_; }
  // Overwrites `out` with the prompt token ids of `spec` (empty for a text prompt).
  void FillPrompt(const RequestSpec& spec, std::vector<int32_t>* out) const;
  // The ids prompts are drawn from: the vocabulary minus the special ids.
  const std::vector<int32_t>& allowed_tokens() const { return allowed_; }
  int num_clusters() const { return num_clusters_; }

 private:
  friend struct WorkloadBuilder;
  friend StatusOr<Workload> BuildWorkload(const WorkloadOptions&, const ModelFacts&,
                                          const model::Tokenizer*);
  std::vector<RequestSpec> specs_;
  std::vector<int32_t> allowed_;
  std::vector<int32_t> prefix_;
  std::vector<bool> special_;  // [vocab]
  int vocab_size_ = 0;
  int num_clusters_ = 0;
  int block_size_ = 512;
  uint64_t seed_ = 0;
  bool trace_ = false;
  bool has_text_ = false;
};

// Builds `options.num_prompts` specs (the whole file for trace replay). `tokenizer` may be null.
// Errors name the flag or the file and line.
StatusOr<Workload> BuildWorkload(const WorkloadOptions& options, const ModelFacts& facts,
                                 const model::Tokenizer* tokenizer);

// Length bounds of --random-range-ratio: [floor(L(1-r)), ceil(L(1+r))].
std::pair<int, int> RangeRatioBounds(int length, double ratio);

}  // namespace moe::bench
