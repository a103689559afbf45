// TestServer: a real moeserve server in-process on 127.0.0.1 (a free port), built the way
// `moeserve serve` builds it (app::OpenEngine + gateway + serving::Server), over a generated
// preset model on a CPU backend. For end-to-end tests of every RPC surface.
#pragma once

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "app/runtime_options.h"
#include "model/tokenizer.h"
#include "serving/request_gateway.h"
#include "serving/server.h"

namespace moe::testing {

struct TestServerOptions {
  std::string preset = "tiny";  // tiny: token ids only; demo: with the Qwen3 tokenizer
  uint64_t seed = 3;
  std::string backend = "reference";  // or "null": the zero-cost engine (no model weights)
  app::SchedulerOptions scheduler = DefaultScheduler();
  serving::ServerConfig server;  // host/port are overridden (127.0.0.1, free port)
  int max_context = 256;
  bool ready = true;  // turn health SERVING once started

  static app::SchedulerOptions DefaultScheduler();
};

class TestServer {
 public:
  explicit TestServer(const TestServerOptions& options = {});
  ~TestServer();

  int port() const { return server_->port(); }
  std::string address() const;
  std::shared_ptr<grpc::Channel> NewChannel() const;
  serving::RequestGateway& gateway() { return *gateway_; }
  serving::Server& server() { return *server_; }
  engine::EngineLoop& loop() { return *engine_->loop; }
  const model::ModelConfig& config() const { return engine_->config; }
  const model::Tokenizer* tokenizer() const { return tokenizer_.get(); }

 private:
  std::unique_ptr<model::Tokenizer> tokenizer_;
  std::unique_ptr<app::EngineSession> engine_;
  std::unique_ptr<serving::RequestGateway> gateway_;
  std::unique_ptr<serving::Server> server_;
};

}  // namespace moe::testing
