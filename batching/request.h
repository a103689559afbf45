// Request: what a client asked for, as the engine sees it (validated token ids and sampling
// parameters). Text, API details and transport state stay in serving/.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "batching/sampling_params.h"

namespace moe::batching {

using RequestId = uint64_t;  // engine-internal, unique per process

struct Request {
  RequestId id = 0;
  std::string external_id;      // the client's request_id (logs, Abort by name)
  std::vector<int32_t> prompt;  // token ids, non-empty, each < vocab
  SamplingParams sampling;
  int32_t priority = 0;         // lower value = more important (vLLM convention)
  int64_t arrival_ns = 0;       // monotonic
  int64_t arrival_wall_ns = 0;  // wall clock, for responses and logs
};

}  // namespace moe::batching
