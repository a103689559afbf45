#include "bench/serve/request_record.h"

#include <nlohmann/json.hpp>

namespace moe::bench {

std::string RecordToJsonLine(const RequestRecord& r) {
  nlohmann::ordered_json j;
  j["request_id"] = r.request_id;
  j["t_send"] = r.t_send;
  j["t_send_wall_ns"] = r.t_send_wall_ns;
  j["t_scheduled"] = r.t_scheduled;
  j["client_queue_time"] = r.client_queue_time();
  j["chunk_times"] = r.chunk_times;
  j["chunk_ntokens"] = r.chunk_ntokens;
  j["t_end"] = r.t_end;
  j["num_messages"] = r.num_messages;
  j["prompt_tokens"] = r.prompt_tokens;
  j["output_tokens"] = r.output_tokens;
  j["max_tokens"] = r.max_tokens;
  j["success"] = r.success;
  j["grpc_code"] = r.grpc_code;
  j["error"] = r.error;
  j["finish_reason"] = r.finish_reason;
  if (r.cluster >= 0) j["cluster"] = r.cluster;
  if (r.perf.present()) {
    j["server_arrival_ns"] = r.perf.arrival_ns;
    j["server_first_scheduled_ns"] = r.perf.first_scheduled_ns;
    j["server_first_token_ns"] = r.perf.first_token_ns;
    j["server_last_token_ns"] = r.perf.last_token_ns;
    j["server_num_preemptions"] = r.perf.num_preemptions;
    j["server_num_chunks_sent"] = r.perf.num_chunks_sent;
  }
  return j.dump();
}

}  // namespace moe::bench
