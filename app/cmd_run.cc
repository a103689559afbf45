#include <condition_variable>
#include <iostream>
#include <mutex>

#include "app/commands.h"
#include "app/runtime_options.h"
#include "core/clock.h"
#include "model/tokenizer_loader.h"

namespace moe::app {
namespace {

struct RunOptions {
  RuntimeOptions runtime;
  SchedulerOptions scheduler;
  std::string prompt_tokens;
  std::string prompt;  // text, for models with a tokenizer
  int max_tokens = 16;
  bool ignore_eos = false;
  float temperature = 0.f;
  int64_t seed = -1;
};

// Prints tokens as they stream and remembers the final output.
class PrintingSink : public engine::OutputSink {
 public:
  void OnOutput(engine::RequestOutput output) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (int32_t t : output.new_tokens) {
      if (first_token_ns_ == 0) first_token_ns_ = MonotonicNanos();
      std::cout << (printed_++ ? "," : "") << t << std::flush;
    }
    if (output.finished) {
      final_ = std::move(output);
      done_ = true;
      cv_.notify_all();
    }
  }
  engine::RequestOutput Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
    return final_;
  }
  int64_t first_token_ns() const { return first_token_ns_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  engine::RequestOutput final_;
  bool done_ = false;
  int printed_ = 0;
  int64_t first_token_ns_ = 0;
};

Status RunGenerate(const RunOptions& o) {
  if (o.prompt.empty() == o.prompt_tokens.empty()) {
    return InvalidArgument("give exactly one of --prompt and --prompt-tokens");
  }
  std::unique_ptr<model::Tokenizer> tokenizer;
  std::vector<int32_t> prompt;
  if (!o.prompt.empty()) {
    MOE_ASSIGN_OR_RETURN(tokenizer, model::LoadTokenizer(o.runtime.model_dir));
    if (tokenizer == nullptr) {
      return InvalidArgument("--prompt: ", o.runtime.model_dir,
                             " has no tokenizer.json; use --prompt-tokens");
    }
    MOE_ASSIGN_OR_RETURN(prompt, tokenizer->Encode(o.prompt));
  } else {
    MOE_ASSIGN_OR_RETURN(prompt, ParseIdList(o.prompt_tokens, "--prompt-tokens"));
  }
  RuntimeOptions runtime = o.runtime;
  if (runtime.max_context == 0) {
    runtime.max_context = static_cast<int>(prompt.size()) + o.max_tokens;
  }
  SchedulerOptions sched = o.scheduler;
  sched.max_num_seqs = 1;
  MOE_ASSIGN_OR_RETURN(auto engine, OpenEngine(runtime, sched));
  batching::Request request;
  request.prompt = prompt;
  request.sampling.max_tokens = o.max_tokens;
  request.sampling.ignore_eos = o.ignore_eos;
  request.sampling.temperature = o.temperature;
  if (o.seed >= 0) request.sampling.seed = static_cast<uint64_t>(o.seed);
  auto sink = std::make_shared<PrintingSink>();
  const int64_t start = MonotonicNanos();
  MOE_RETURN_IF_ERROR(engine->loop->Submit(std::move(request), sink));
  const engine::RequestOutput out = sink->Wait();
  const int64_t end = MonotonicNanos();
  std::cout << "\n";
  MOE_RETURN_IF_ERROR(out.status);
  if (tokenizer != nullptr) {
    std::cout << tokenizer->Decode(out.output_ids, {.skip_special_tokens = true}) << "\n";
  }
  const double ttft = (sink->first_token_ns() - start) * 1e-9;
  const double rest = (end - sink->first_token_ns()) * 1e-9;
  std::cerr << "prompt " << out.prompt_tokens << " tokens, generated " << out.completion_tokens
            << " tokens (finish: " << batching::FinishReasonName(out.finish_reason)
            << "); time to first token " << ttft * 1e3 << " ms, "
            << (out.completion_tokens > 1 ? (out.completion_tokens - 1) / rest : 0.0)
            << " tokens/s after\n";
  return OkStatus();
}

}  // namespace

Action RegisterRun(CLI::App& app) {
  auto options = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run",
                                     "Generate for one prompt through the engine; prints token ids "
                                     "(and the text, for a --prompt)");
  options->runtime.Register(*cmd);
  options->scheduler.Register(*cmd);
  cmd->add_option("--prompt-tokens", options->prompt_tokens, "comma-separated prompt token ids");
  cmd->add_option("--prompt", options->prompt, "prompt text (models with a tokenizer)");
  cmd->add_option("--max-tokens", options->max_tokens, "tokens to generate")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", options->temperature, "0 = greedy")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", options->seed, "sampling seed (default: random)");
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
