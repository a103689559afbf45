#include <cstdio>
#include <iostream>
#include <numeric>

#include "app/commands.h"
#include "app/runtime_options.h"
#include "batching/token_batch.h"

namespace moe::app {
namespace {

struct LogitsOptions {
  RuntimeOptions runtime;
  std::string tokens;
  std::string out;
};

Status RunLogits(const LogitsOptions& o) {
  MOE_ASSIGN_OR_RETURN(std::vector<int32_t> ids, ParseIdList(o.tokens, "--tokens"));
  RuntimeOptions runtime = o.runtime;
  if (runtime.max_context == 0) runtime.max_context = static_cast<int>(ids.size());
  SessionLimits limits;
  limits.max_seqs = 1;
  limits.max_tokens = static_cast<int>(ids.size());
  limits.max_logit_rows = static_cast<int>(ids.size());
  MOE_ASSIGN_OR_RETURN(auto session, OpenSession(runtime, limits));
  const int vocab = session->model->config().vocab_size;
  if (static_cast<int>(ids.size()) > session->model->runtime().max_context) {
    return InvalidArgument("--tokens: ", ids.size(), " tokens exceed the context limit ",
                           session->model->runtime().max_context);
  }
  // One sequence, all positions in one step, logits for every position.
  const int block_size = session->model->runtime().block_size;
  std::vector<int32_t> blocks((ids.size() + block_size - 1) / block_size);
  std::iota(blocks.begin(), blocks.end(), 0);
  batching::TokenBatch batch;
  batch.block_size = block_size;
  MOE_RETURN_IF_ERROR(batch.AddSequence(ids, 0, blocks, 0));
  std::vector<float> logits(ids.size() * static_cast<size_t>(vocab));
  MOE_RETURN_IF_ERROR(session->model->Forward(batch, *session->cache, logits.data()));

  FILE* f = std::fopen(o.out.c_str(), "wb");
  if (f == nullptr) return InvalidArgument("--out: cannot open '", o.out, "' for writing");
  const size_t written = std::fwrite(logits.data(), sizeof(float), logits.size(), f);
  const bool closed = std::fclose(f) == 0;
  if (written != logits.size() || !closed) return DataLoss("--out: write to '", o.out, "' failed");
  std::cerr << "wrote logits [" << ids.size() << ", " << vocab << "] (float32 little-endian) to "
            << o.out << "\n";
  return OkStatus();
}

}  // namespace

Action RegisterLogits(CLI::App& app) {
  auto options = std::make_shared<LogitsOptions>();
  CLI::App* cmd = app.add_subcommand(
      "logits", "Run one sequence through the engine; write float32 logits [tokens, vocab]");
  options->runtime.Register(*cmd);
  cmd->add_option("--tokens", options->tokens, "comma-separated token ids")->required();
  cmd->add_option("--out", options->out, "output file (raw little-endian float32)")->required();
  return [options]() {
    const Status status = RunLogits(*options);
    if (!status.ok()) {
      std::cerr << "moeserve logits: " << status.message() << "\n";
      return 1;
    }
    return 0;
  };
}

}  // namespace moe::app
