#include "serving/moeserve_service.h"

#include "core/clock.h"
#include "serving/generate_call.h"
#include "serving/version.h"

namespace moe::serving {

namespace pb = moeserve::v1;

MoeServeService::MoeServeService(RequestGateway* gateway, const ServerConfig& config,
                                 int64_t start_ns)
    : gateway_(gateway), config_(config), start_ns_(start_ns) {}

grpc::ServerWriteReactor<pb::GenerateResponse>* MoeServeService::Generate(
    grpc::CallbackServerContext* context, const pb::GenerateRequest* request) {
  return new GenerateCall(context, request, gateway_, config_.retry_after_ms);
}

grpc::ServerUnaryReactor* MoeServeService::Abort(grpc::CallbackServerContext* context,
                                                 const pb::AbortRequest* request,
                                                 pb::AbortResponse* response) {
  int aborted = 0;
  for (const std::string& id : request->request_ids()) {
    aborted += gateway_->AbortByExternalId(id);
  }
  response->set_aborted(static_cast<uint32_t>(aborted));
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* MoeServeService::GetModelInfo(grpc::CallbackServerContext* context,
                                                        const pb::GetModelInfoRequest*,
                                                        pb::GetModelInfoResponse* response) {
  const ModelInfo& info = gateway_->info();
  const model::ModelConfig& c = info.config;
  response->set_served_model_name(info.served_model_name);
  response->set_model_type(c.model_type);
  response->set_max_context_length(static_cast<uint32_t>(info.max_context));
  response->set_vocab_size(static_cast<uint32_t>(c.vocab_size));
  for (int id : c.eos_token_ids) response->add_eos_token_ids(static_cast<uint32_t>(id));
  response->set_bos_token_id(c.bos_token_id);
  response->set_num_experts(static_cast<uint32_t>(c.num_experts));
  response->set_experts_per_token(static_cast<uint32_t>(c.num_experts_per_tok));
  response->set_num_layers(static_cast<uint32_t>(c.num_layers));
  response->set_hidden_size(static_cast<uint32_t>(c.hidden_size));
  response->set_has_tokenizer(gateway_->tokenizer() != nullptr);
  response->set_weights_dtype(info.weights_dtype);
  response->set_expert_clusters(static_cast<uint32_t>(info.expert_clusters));
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* MoeServeService::GetServerInfo(grpc::CallbackServerContext* context,
                                                         const pb::GetServerInfoRequest*,
                                                         pb::GetServerInfoResponse* response) {
  const ModelInfo& info = gateway_->info();
  response->set_version(kVersion);
  response->set_uptime_seconds((MonotonicNanos() - start_ns_) * 1e-9);
  response->set_draining(gateway_->draining());
  response->set_backend(info.backend);
  response->set_max_num_seqs(static_cast<uint32_t>(info.max_num_seqs));
  response->set_max_num_batched_tokens(static_cast<uint32_t>(info.max_num_batched_tokens));
  response->set_num_kv_blocks(static_cast<uint32_t>(info.num_kv_blocks));
  response->set_kv_block_size(static_cast<uint32_t>(info.kv_block_size));
  response->set_active_requests(static_cast<uint32_t>(gateway_->active_requests()));
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* MoeServeService::GetLoads(grpc::CallbackServerContext* context,
                                                    const pb::GetLoadsRequest*,
                                                    pb::GetLoadsResponse* response) {
  const engine::EngineStats s = gateway_->Stats();
  response->set_num_running_reqs(static_cast<uint32_t>(s.num_running));
  response->set_num_waiting_reqs(static_cast<uint32_t>(s.num_waiting));
  response->set_kv_cache_usage(s.kv_usage);
  response->set_gen_throughput_tok_s(s.generation_tokens_per_second);
  response->set_prompt_throughput_tok_s(s.prompt_tokens_per_second);
  response->set_prefix_cache_hit_rate(s.prefix_hit_rate);
  response->set_num_waiting_prompt_tokens(static_cast<uint64_t>(s.num_waiting_tokens));
  response->set_total_preemptions(static_cast<uint64_t>(s.total_preemptions));
  response->set_total_steps(static_cast<uint64_t>(s.total_steps));
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace moe::serving
