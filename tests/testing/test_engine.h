// The harness of the end-to-end engine tests (tests/engine, tests/cuda/backend): an EngineLoop over
// any backend and a generated preset model, and an OutputSink that collects one request's stream.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "engine/backend.h"
#include "engine/engine_loop.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "scheduler/scheduler_config.h"

namespace moe::testing {

// Collects every output of one request; Wait() blocks until the final one.
class CollectingSink : public engine::OutputSink {
 public:
  void OnOutput(engine::RequestOutput output) override;
  engine::RequestOutput Wait();
  std::vector<int32_t> streamed();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int32_t> streamed_;
  engine::RequestOutput final_;
  bool done_ = false;
};

struct TestEngineOptions {
  std::string preset = "tiny";
  uint64_t model_seed = 3;
  DType activations = DType::kBF16;
  int max_tokens_per_step = 0;  // 0: the scheduler's token budget
  uint64_t engine_seed = 1234;
};

// Owns the backend, the model, the KV cache and a started EngineLoop (stopped on destruction).
struct TestEngine {
  TestEngine(std::unique_ptr<engine::Backend> backend, const scheduler::SchedulerConfig& sc,
             const TestEngineOptions& options = {});
  ~TestEngine();
  TestEngine(const TestEngine&) = delete;
  TestEngine& operator=(const TestEngine&) = delete;

  std::unique_ptr<engine::Backend> backend;
  std::unique_ptr<engine::Model> model;
  std::unique_ptr<engine::KvCache> cache;
  std::unique_ptr<engine::EngineLoop> loop;
};

}  // namespace moe::testing
