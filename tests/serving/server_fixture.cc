#include "tests/serving/server_fixture.h"

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "model/tokenizer_loader.h"
#include "tests/testing/test_models.h"

namespace moe::testing {

app::SchedulerOptions TestServerOptions::DefaultScheduler() {
  app::SchedulerOptions s;
  s.max_num_batched_tokens = 256;
  s.max_num_seqs = 32;
  s.kv_cache_bytes = 0;
  s.kv_cache_fraction = 0;
  return s;
}

TestServer::TestServer(const TestServerOptions& options) {
  app::RuntimeOptions runtime;
  runtime.model_dir = PresetModelDir(options.preset, options.seed);
  runtime.backend = options.backend;
  runtime.max_context = options.max_context;
  runtime.threads = 2;
  auto tokenizer = model::LoadTokenizer(runtime.model_dir);
  MOE_CHECK(tokenizer.ok()) << tokenizer.status().message();
  tokenizer_ = std::move(*tokenizer);
  app::SchedulerOptions scheduler = options.scheduler;
  if (scheduler.kv_cache_bytes == 0 && scheduler.kv_cache_fraction == 0) {
    scheduler.kv_cache_bytes = 64 << 20;
  }
  auto engine = app::OpenEngine(runtime, scheduler);
  MOE_CHECK(engine.ok()) << engine.status().message();
  engine_ = std::move(*engine);
  serving::ModelInfo info;
  info.served_model_name = options.server.served_model_name;
  info.config = engine_->config;
  info.max_context = engine_->max_context;
  info.backend = engine_->backend_name;
  info.max_num_seqs = engine_->scheduler.max_num_seqs;
  info.max_num_batched_tokens = engine_->scheduler.max_num_batched_tokens;
  info.num_kv_blocks = engine_->scheduler.num_blocks;
  info.kv_block_size = engine_->scheduler.block_size;
  gateway_ = std::make_unique<serving::RequestGateway>(engine_->loop.get(), info, tokenizer_.get());
  serving::ServerConfig server = options.server;
  server.host = "127.0.0.1";
  server.port = 0;
  auto started = serving::Server::Start(server, gateway_.get());
  MOE_CHECK(started.ok()) << started.status().message();
  server_ = std::move(*started);
  if (options.ready) server_->SetReady();
}

TestServer::~TestServer() {
  server_->Shutdown();
  engine_->loop->Stop();
}

std::string TestServer::address() const { return absl::StrCat("127.0.0.1:", port()); }

std::shared_ptr<grpc::Channel> TestServer::NewChannel() const {
  return grpc::CreateChannel(address(), grpc::InsecureChannelCredentials());
}

}  // namespace moe::testing
