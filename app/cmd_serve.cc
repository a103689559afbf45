// `moeserve serve`: the product's main job. Loads a model (or generates the `demo` preset on first
// use), starts the engine and the gRPC server, warms up, turns health SERVING, and drains on
// SIGTERM / SIGINT before exiting 0.
#include <pthread.h>
#include <signal.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "app/commands.h"
#include "app/runtime_options.h"
#include "core/logging.h"
#include "model/random_model.h"
#include "model/tokenizer_loader.h"
#include "serving/metrics_telemetry.h"
#include "serving/request_gateway.h"
#include "serving/server.h"

namespace moe::app {
namespace {

struct ServeOptions {
  RuntimeOptions runtime;
  SchedulerOptions scheduler;
  serving::ServerConfig server;
  std::string preset = "demo";
  uint64_t seed = 0;
  std::string models_dir;  // where presets are generated (default ~/.cache/moeserve/models)
  // Observability: --metrics-port (0 = off), --log-file (empty = off) and friends.
  serving::TelemetryOptions telemetry;
  int metrics_port = 0;
  bool no_expert_stats = false;
};

// Stops the telemetry (its engine_stats thread and last flush) before the gateway it reads goes;
// the engine loop may keep a reference until it is destroyed.
struct TelemetryStopper {
  std::shared_ptr<serving::Telemetry> telemetry;
  ~TelemetryStopper() {
    if (telemetry != nullptr) telemetry->Stop();
  }
};

// Waits for the engine to finish one request (the warm-up).
class WaitSink : public engine::OutputSink {
 public:
  void OnOutput(engine::RequestOutput output) override {
    if (!output.finished) return;
    std::lock_guard<std::mutex> lock(mu_);
    status_ = output.status;
    done_ = true;
    cv_.notify_all();
  }
  Status Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
    return status_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  Status status_;
};

std::string DefaultModelsDir() {
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : "/tmp") + "/.cache/moeserve/models";
}

// The model directory to serve: --model, or the preset generated once into the models dir.
StatusOr<std::string> ResolveModel(const ServeOptions& o) {
  if (!o.runtime.model_dir.empty()) return o.runtime.model_dir;
  const std::string base = o.models_dir.empty() ? DefaultModelsDir() : o.models_dir;
  const std::string dir = absl::StrCat(base, "/", o.preset, "-seed", o.seed);
  if (std::filesystem::exists(dir + "/config.json") &&
      std::filesystem::exists(dir + "/model.safetensors")) {
    return dir;
  }
  MOE_LOG(INFO) << "generating the '" << o.preset << "' preset into " << dir;
  model::RandomModelOptions gen;
  gen.preset = o.preset;
  gen.seed = o.seed;
  gen.out_dir = dir;
  MOE_RETURN_IF_ERROR(model::GenerateRandomModel(gen));
  return dir;
}

Status Serve(ServeOptions o) {
  // Every thread started from here on inherits the blocked signals; the main thread waits for
  // them with sigwait, so a signal never interrupts a worker.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  o.telemetry.metrics = o.metrics_port > 0;
  o.telemetry.metrics_port = o.metrics_port;
  MOE_RETURN_IF_ERROR(o.telemetry.Validate());
  if (o.telemetry.wants_routing() && !o.no_expert_stats) o.scheduler.collect_routing = true;
  MOE_ASSIGN_OR_RETURN(o.runtime.model_dir, ResolveModel(o));
  MOE_ASSIGN_OR_RETURN(std::unique_ptr<model::Tokenizer> tokenizer,
                       model::LoadTokenizer(o.runtime.model_dir));
  MOE_ASSIGN_OR_RETURN(auto engine, OpenEngine(o.runtime, o.scheduler));
  const model::ModelConfig& config = engine->config;

  serving::ModelInfo info;
  info.served_model_name = o.server.served_model_name;
  info.config = config;
  info.max_context = engine->max_context;
  info.expert_clusters = config.expert_clusters;
  info.weights_dtype = std::string(DTypeName(config.torch_dtype));
  info.backend = engine->backend_name;
  info.max_num_seqs = engine->scheduler.max_num_seqs;
  info.max_num_batched_tokens = engine->scheduler.max_num_batched_tokens;
  info.num_kv_blocks = engine->scheduler.num_blocks;
  info.kv_block_size = engine->scheduler.block_size;
  serving::RequestGateway gateway(engine->loop.get(), info, tokenizer.get());
  // Telemetry is wired before the server accepts its first call.
  TelemetryStopper telemetry;
  if (o.telemetry.metrics || !o.telemetry.log_file.empty()) {
    MOE_ASSIGN_OR_RETURN(telemetry.telemetry, serving::Telemetry::Create(o.telemetry, &gateway));
    gateway.SetTelemetry(telemetry.telemetry);
    engine->loop->SetObserver(telemetry.telemetry);
  }
  MOE_ASSIGN_OR_RETURN(auto server, serving::Server::Start(o.server, &gateway));

  // Warm-up: one token through the whole engine path before health turns SERVING.
  {
    batching::Request warmup;
    warmup.prompt = {config.bos_token_id >= 0 ? config.bos_token_id : 0};
    warmup.sampling.max_tokens = 1;
    warmup.sampling.temperature = 0;
    auto sink = std::make_shared<WaitSink>();
    MOE_RETURN_IF_ERROR(engine->loop->Submit(std::move(warmup), sink));
    MOE_RETURN_IF_ERROR(Annotate(sink->Wait(), "warm-up"));
  }
  if (telemetry.telemetry) {
    if (o.telemetry.metrics) {
      MOE_LOG(INFO) << "Prometheus metrics on http://" << o.telemetry.metrics_host << ":"
                    << telemetry.telemetry->metrics_port() << "/metrics";
      std::cout << "metrics on " << o.telemetry.metrics_host << ":"
                << telemetry.telemetry->metrics_port() << std::endl;
    }
    if (!o.telemetry.log_file.empty()) {
      MOE_LOG(INFO) << "request log: " << o.telemetry.log_file
                    << (o.telemetry.log_prompts ? " (with prompts)" : "");
    }
  }
  server->SetReady();
  MOE_LOG(INFO) << "serving " << o.server.served_model_name << " ("
                << (tokenizer ? "text and token ids" : "token ids only") << ") on " << o.server.host
                << ":" << server->port();
  // Tests and scripts read the bound port from this line.
  std::cout << "listening on " << o.server.host << ":" << server->port() << std::endl;

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  MOE_LOG(INFO) << "received " << (signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  server->Drain(o.server.drain_timeout_s);
  engine->loop->Stop();
  if (telemetry.telemetry != nullptr) telemetry.telemetry->Stop();
  MOE_LOG(INFO) << "stopped cleanly";
  return OkStatus();
}

}  // namespace

Action RegisterServe(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "Serve a model over gRPC (native moeserve.v1 and KServe v2 / Triton)");
  o->runtime.Register(*cmd, /*model_required=*/false);
  o->scheduler.Register(*cmd);
  cmd->add_option("--preset", o->preset,
                  "without --model: serve this generated preset (tiny | bench | demo)")
      ->check(CLI::IsMember(model::PresetNames()));
  cmd->add_option("--seed", o->seed, "seed of the generated preset");
  cmd->add_option("--models-dir", o->models_dir,
                  "where generated presets are kept (default ~/.cache/moeserve/models)");
  cmd->add_option("--host", o->server.host, "address to listen on");
  cmd->add_option("--port", o->server.port, "port (0 = any free port)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--served-model-name", o->server.served_model_name, "model name reported");
  cmd->add_option("--kserve-text-model", o->server.kserve_text_model,
                  "KServe / Triton name of the text model");
  cmd->add_option("--kserve-token-model", o->server.kserve_token_model,
                  "KServe / Triton name of the token model");
  cmd->add_option("--drain-timeout", o->server.drain_timeout_s,
                  "seconds in-flight requests get to finish on SIGTERM")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--metrics-port", o->metrics_port,
                  "serve Prometheus metrics on this HTTP port at /metrics (0 = off)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--metrics-host", o->telemetry.metrics_host,
                  "address of the metrics port (loopback by default)");
  cmd->add_option("--metrics-max-expert-series", o->telemetry.max_expert_series,
                  "cap on moeserve_expert_tokens_total series (beyond: summed over layers)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--log-file", o->telemetry.log_file,
                  "JSON Lines request log: request_finished and engine_stats events "
                  "('-' = stdout; default off)");
  cmd->add_option("--log-max-bytes", o->telemetry.log_max_bytes,
                  "rotate the request log past this size (0 = never)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--log-max-files", o->telemetry.log_max_files,
                  "rotated request logs kept (FILE.1 ... FILE.N)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--log-prompts", o->telemetry.log_prompts,
                "include the prompt (text or token ids) in request_finished events");
  cmd->add_option("--engine-stats-interval", o->telemetry.engine_stats_interval_s,
                  "seconds between engine_stats log events (0 = none)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--no-expert-stats", o->no_expert_stats,
                "do not turn on --collect-routing for metrics and logs");
  return [o]() {
    const Status status = Serve(*o);
    if (!status.ok()) {
      std::cerr << "moeserve serve: " << status.message() << "\n";
      return 1;
    }
    return 0;
  };
}

}  // namespace moe::app
