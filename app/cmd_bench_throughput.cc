// `moeserve bench throughput`: offline throughput through the real engine (scheduler, continuous
// batching, chunked prefill), as vLLM's `benchmark_throughput`: N prompts of random tokens, each
// generating exactly O tokens (ignore_eos), all submitted at once. Writes vLLM's keys.
#include <condition_variable>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>

#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "app/runtime_options.h"
#include "core/clock.h"

namespace moe::app {
namespace {

struct BenchThroughputOptions {
  RuntimeOptions runtime;
  SchedulerOptions scheduler;
  int num_prompts = 64;
  int input_len = 128;
  int output_len = 128;
  uint64_t seed = 0;
  std::string json;
};

// Counts finished requests; wakes the waiter when all are done.
class CountingSink : public engine::OutputSink {
 public:
  explicit CountingSink(std::shared_ptr<std::pair<std::mutex, std::condition_variable>> sync,
                        std::shared_ptr<int> remaining, std::shared_ptr<Status> failure)
      : sync_(std::move(sync)), remaining_(std::move(remaining)), failure_(std::move(failure)) {}
  void OnOutput(engine::RequestOutput output) override {
    if (!output.finished) return;
    std::lock_guard<std::mutex> lock(sync_->first);
    if (!output.status.ok() && failure_->ok()) *failure_ = output.status;
    completion_tokens = output.completion_tokens;
    if (--*remaining_ == 0) sync_->second.notify_all();
  }
  int completion_tokens = 0;

 private:
  std::shared_ptr<std::pair<std::mutex, std::condition_variable>> sync_;
  std::shared_ptr<int> remaining_;
  std::shared_ptr<Status> failure_;
};

Status RunBenchThroughput(const BenchThroughputOptions& o) {
  RuntimeOptions runtime = o.runtime;
  if (runtime.max_context == 0) runtime.max_context = o.input_len + o.output_len;
  MOE_ASSIGN_OR_RETURN(auto engine, OpenEngine(runtime, o.scheduler));
  const int vocab = engine->session->model->config().vocab_size;
  std::mt19937_64 rng(o.seed);
  std::vector<batching::Request> requests(o.num_prompts);
  for (batching::Request& r : requests) {
    r.prompt.resize(o.input_len);
    for (int32_t& t : r.prompt) t = static_cast<int32_t>(rng() % vocab);
    r.sampling.temperature = 0;
    r.sampling.max_tokens = o.output_len;
    r.sampling.ignore_eos = true;
  }
  auto sync = std::make_shared<std::pair<std::mutex, std::condition_variable>>();
  auto remaining = std::make_shared<int>(o.num_prompts);
  auto failure = std::make_shared<Status>();
  std::vector<std::shared_ptr<CountingSink>> sinks;
  const int64_t start = MonotonicNanos();
  for (batching::Request& r : requests) {
    sinks.push_back(std::make_shared<CountingSink>(sync, remaining, failure));
    MOE_RETURN_IF_ERROR(engine->loop->Submit(std::move(r), sinks.back()));
  }
  {
    std::unique_lock<std::mutex> lock(sync->first);
    sync->second.wait(lock, [&] { return *remaining == 0; });
  }
  const double elapsed = (MonotonicNanos() - start) * 1e-9;
  MOE_RETURN_IF_ERROR(*failure);
  int64_t output_tokens = 0;
  for (const auto& s : sinks) output_tokens += s->completion_tokens;
  const int64_t total_tokens = static_cast<int64_t>(o.num_prompts) * o.input_len + output_tokens;
  const engine::EngineStats stats = engine->loop->Stats();
  nlohmann::ordered_json j;
  j["elapsed_time"] = elapsed;
  j["num_requests"] = o.num_prompts;
  j["total_num_tokens"] = total_tokens;
  j["requests_per_second"] = o.num_prompts / elapsed;
  j["tokens_per_second"] = total_tokens / elapsed;
  j["output_tokens_per_second"] = output_tokens / elapsed;
  j["input_len"] = o.input_len;
  j["output_len"] = o.output_len;
  j["backend"] = engine->session->backend->Name();
  j["max_num_seqs"] = engine->scheduler.max_num_seqs;
  j["max_num_batched_tokens"] = engine->scheduler.max_num_batched_tokens;
  j["engine_steps"] = stats.total_steps;
  j["preemptions"] = stats.total_preemptions;
  std::cout << "Throughput: " << o.num_prompts / elapsed << " requests/s, "
            << total_tokens / elapsed << " total tokens/s, " << output_tokens / elapsed
            << " output tokens/s (" << o.num_prompts << " requests, " << elapsed << " s, "
            << stats.total_steps << " steps)\n";
  if (!o.json.empty()) {
    std::ofstream out(o.json);
    out << j.dump(2) << "\n";
    if (!out) return DataLoss("--json: cannot write '", o.json, "'");
  }
  return OkStatus();
}

}  // namespace

Action RegisterBenchThroughput(CLI::App& bench) {
  auto o = std::make_shared<BenchThroughputOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "throughput", "Offline throughput through the engine (continuous batching), vLLM's keys");
  o->runtime.Register(*cmd);
  o->scheduler.Register(*cmd);
  cmd->add_option("--num-prompts", o->num_prompts, "requests")->check(CLI::PositiveNumber);
  cmd->add_option("--input-len", o->input_len, "prompt tokens")->check(CLI::PositiveNumber);
  cmd->add_option("--output-len", o->output_len, "generated tokens per request")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", o->seed, "prompt RNG seed");
  cmd->add_option("--json", o->json, "write the result as JSON");
  return [o]() {
    const Status status = RunBenchThroughput(*o);
    if (!status.ok()) {
      std::cerr << "moeserve bench throughput: " << status.message() << "\n";
      return 1;
    }
    return 0;
  };
}

}  // namespace moe::app
