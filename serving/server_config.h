// ServerConfig: what the gRPC server listens on and how it treats connections and requests.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace moe::serving {

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 50051;  // 0 = pick a free port (tests)
  std::string served_model_name = "moeserve";
  // KServe / Triton model names (TensorRT-LLM's example names by default).
  std::string kserve_text_model = "ensemble";
  std::string kserve_token_model = "tensorrt_llm";
  int64_t max_message_bytes = 64 << 20;
  int64_t keepalive_time_ms = 30000;
  int64_t keepalive_timeout_ms = 10000;
  int64_t min_recv_ping_interval_ms = 10000;
  double drain_timeout_s = 30.0;
  int64_t retry_after_ms = 1000;  // hint sent with RESOURCE_EXHAUSTED

  Status Validate() const;
};

}  // namespace moe::serving
