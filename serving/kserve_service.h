// KServe v2 / Triton `inference.GRPCInferenceService` over the same gateway: ServerLive,
// ServerReady, ModelReady, ServerMetadata, ModelMetadata, ModelConfig, ModelInfer and
// ModelStreamInfer (decoupled streaming), for a text model (`ensemble` naming: text_input,
// max_tokens, stream -> text_output) and a token model (`tensorrt_llm` naming: input_ids,
// input_lengths, request_output_len -> output_ids). Other RPCs answer UNIMPLEMENTED.
#pragma once

#include <memory>

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/service_type.h>

#include "serving/request_gateway.h"
#include "serving/server_config.h"

namespace moe::serving {

std::unique_ptr<grpc::Service> CreateKServeService(RequestGateway* gateway,
                                                   const ServerConfig& config);

}  // namespace moe::serving
