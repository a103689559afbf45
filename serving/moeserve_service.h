// The native moeserve.v1.MoeServe service (callback API). Generate is a server-streaming reactor
// (generate_call.h); the info RPCs answer from the gateway without touching the engine thread.
#pragma once

#include "moeserve/v1/moeserve.grpc.pb.h"
#include "serving/request_gateway.h"
#include "serving/server_config.h"

namespace moe::serving {

class MoeServeService final : public moeserve::v1::MoeServe::CallbackService {
 public:
  MoeServeService(RequestGateway* gateway, const ServerConfig& config, int64_t start_ns);

  grpc::ServerWriteReactor<moeserve::v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const moeserve::v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Abort(grpc::CallbackServerContext* context,
                                  const moeserve::v1::AbortRequest* request,
                                  moeserve::v1::AbortResponse* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const moeserve::v1::GetModelInfoRequest* request,
                                         moeserve::v1::GetModelInfoResponse* response) override;
  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* context,
                                          const moeserve::v1::GetServerInfoRequest* request,
                                          moeserve::v1::GetServerInfoResponse* response) override;
  grpc::ServerUnaryReactor* GetLoads(grpc::CallbackServerContext* context,
                                     const moeserve::v1::GetLoadsRequest* request,
                                     moeserve::v1::GetLoadsResponse* response) override;

 private:
  RequestGateway* gateway_;
  ServerConfig config_;
  int64_t start_ns_;
};

}  // namespace moe::serving
