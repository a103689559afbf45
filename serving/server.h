// Server: the gRPC server hosting the native MoeServe service, the KServe v2 / Triton service,
// the standard health service (NOT_SERVING until the model is ready, and again while draining)
// and server reflection. Owns nothing of the engine: the gateway is passed in.
#pragma once

#include <memory>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/service_type.h>

#include "serving/request_gateway.h"
#include "serving/server_config.h"

namespace moe::serving {

class Server {
 public:
  // Binds and starts serving (health NOT_SERVING until SetReady). Errors: the address is in use
  // or invalid.
  static StatusOr<std::unique_ptr<Server>> Start(const ServerConfig& config,
                                                 RequestGateway* gateway);
  ~Server();

  int port() const { return port_; }
  // Model loaded and warmed up: health SERVING, requests accepted.
  void SetReady();
  // Graceful stop: health NOT_SERVING, new requests UNAVAILABLE, in-flight requests get up to
  // `timeout_s` to finish, then the server shuts down (remaining calls are cancelled).
  void Drain(double timeout_s);
  void Shutdown();

  static std::vector<std::string> ServiceNames();

 private:
  Server() = default;
  void SetHealth(bool serving);

  ServerConfig config_;
  RequestGateway* gateway_ = nullptr;
  std::vector<std::unique_ptr<grpc::Service>> services_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace moe::serving
