#include <algorithm>
#include <iostream>
#include <numeric>

#include "app/commands.h"
#include "app/runtime_options.h"
#include "batching/token_batch.h"
#include "core/clock.h"

namespace moe::app {
namespace {

struct RunOptions {
  RuntimeOptions runtime;
  std::string prompt_tokens;
  int max_tokens = 16;
  bool ignore_eos = false;
};

int32_t Argmax(const float* row, int n) {
  return static_cast<int32_t>(std::max_element(row, row + n) - row);
}

Status RunGenerate(const RunOptions& o) {
  MOE_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, ParseIdList(o.prompt_tokens, "--prompt-tokens"));
  RuntimeOptions runtime = o.runtime;
  runtime.max_seqs = 1;
  runtime.max_tokens = static_cast<int>(prompt.size());
  if (runtime.max_context == 0) {
    runtime.max_context = static_cast<int>(prompt.size()) + o.max_tokens;
  }
  MOE_ASSIGN_OR_RETURN(auto session, OpenSession(runtime));
  engine::Model& model = *session->model;
  const int vocab = model.config().vocab_size;
  const int context = model.runtime().max_context;
  if (static_cast<int>(prompt.size()) + o.max_tokens > context) {
    return InvalidArgument("--max-tokens: prompt (", prompt.size(), ") + max tokens (",
                           o.max_tokens, ") exceed the context limit ", context);
  }
  const int block_size = model.runtime().block_size;
  std::vector<int32_t> blocks((context + block_size - 1) / block_size);
  std::iota(blocks.begin(), blocks.end(), 0);
  std::vector<float> logits(vocab);
  std::vector<int32_t> output;
  Stopwatch watch;
  double first_token_seconds = 0;
  // Prefill, then one-token decode steps: the same Forward each time.
  std::vector<int32_t> step_tokens = prompt;
  int32_t position = 0;
  while (static_cast<int>(output.size()) < o.max_tokens) {
    batching::TokenBatch batch;
    batch.block_size = block_size;
    MOE_RETURN_IF_ERROR(batch.AddSequence(step_tokens, position, blocks,
                                          static_cast<int>(step_tokens.size()) - 1));
    MOE_RETURN_IF_ERROR(model.Forward(batch, *session->cache, logits.data()));
    position += static_cast<int32_t>(step_tokens.size());
    const int32_t next = Argmax(logits.data(), vocab);
    if (output.empty()) first_token_seconds = watch.ElapsedSeconds();
    output.push_back(next);
    const auto& eos = model.config().eos_token_ids;
    if (!o.ignore_eos && std::find(eos.begin(), eos.end(), next) != eos.end()) break;
    step_tokens.assign(1, next);
  }
  const double total = watch.ElapsedSeconds();
  for (size_t i = 0; i < output.size(); ++i) std::cout << (i ? "," : "") << output[i];
  std::cout << "\n";
  std::cerr << "prompt " << prompt.size() << " tokens, generated " << output.size()
            << " tokens; time to first token " << first_token_seconds * 1e3 << " ms, "
            << (output.size() > 1 ? (output.size() - 1) / (total - first_token_seconds) : 0.0)
            << " tokens/s after\n";
  return OkStatus();
}

}  // namespace

Action RegisterRun(CLI::App& app) {
  auto options = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "Greedy generation for one prompt; prints token ids");
  options->runtime.Register(*cmd);
  cmd->add_option("--prompt-tokens", options->prompt_tokens, "comma-separated prompt token ids")
      ->required();
  cmd->add_option("--max-tokens", options->max_tokens, "tokens to generate")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--ignore-eos", options->ignore_eos, "keep generating after an EOS token");
  return [options]() {
    const Status status = RunGenerate(*options);
    if (!status.ok()) {
      std::cerr << "moeserve run: " << status.message() << "\n";
      return 1;
    }
    return 0;
  };
}

}  // namespace moe::app
