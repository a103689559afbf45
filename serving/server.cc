#include "serving/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "core/clock.h"
#include "core/logging.h"
#include "serving/kserve_service.h"
#include "serving/moeserve_service.h"

namespace moe::serving {

std::vector<std::string> Server::ServiceNames() {
  return {"", "moeserve.v1.MoeServe", "inference.GRPCInferenceService"};
}

StatusOr<std::unique_ptr<Server>> Server::Start(const ServerConfig& config,
                                                RequestGateway* gateway) {
  MOE_RETURN_IF_ERROR(config.Validate());
  auto server = std::unique_ptr<Server>(new Server());
  server->config_ = config;
  server->gateway_ = gateway;
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  grpc::ServerBuilder builder;
  const std::string address = absl::StrCat(config.host, ":", config.port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &server->port_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(config.max_message_bytes));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             static_cast<int>(config.keepalive_time_ms));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             static_cast<int>(config.keepalive_timeout_ms));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             static_cast<int>(config.min_recv_ping_interval_ms));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);

  server->services_.push_back(std::make_unique<MoeServeService>(gateway, config, MonotonicNanos()));
  server->services_.push_back(CreateKServeService(gateway, config));
  for (auto& service : server->services_) builder.RegisterService(service.get());

  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return Unavailable("cannot listen on ", address, " (address in use or invalid)");
  }
  server->SetHealth(false);
  MOE_LOG(INFO) << "listening on " << config.host << ":" << server->port_;
  return server;
}

Server::~Server() { Shutdown(); }

void Server::SetHealth(bool serving) {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health == nullptr) return;
  for (const std::string& name : ServiceNames()) health->SetServingStatus(name, serving);
}

void Server::SetReady() {
  gateway_->SetReady(true);
  SetHealth(true);
}

void Server::Drain(double timeout_s) {
  MOE_LOG(INFO) << "draining: " << gateway_->active_requests() << " requests in flight, up to "
                << timeout_s << " s";
  SetHealth(false);
  gateway_->SetDraining();
  const bool idle = gateway_->loop()->WaitIdle(static_cast<int64_t>(timeout_s * 1000));
  if (!idle) {
    MOE_LOG(WARNING) << "drain timeout: " << gateway_->active_requests()
                     << " requests still in flight are cancelled";
  }
  Shutdown();
}

void Server::Shutdown() {
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  // Calls still open after the deadline are cancelled; their engine requests are aborted.
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  server_->Wait();
}

}  // namespace moe::serving
