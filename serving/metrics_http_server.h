// MetricsHttpServer: the /metrics endpoint, a minimal HTTP/1.1 server on one thread that answers
// `GET /metrics` with the Prometheus text format of a set of prometheus-cpp collectables.
//
// Why not prometheus-cpp's civetweb exposer: civetweb starts its threads with a fixed 100 KiB
// stack, and cuBLASLt (linked when the CUDA backend is built) adds ~94 KiB of static TLS to every
// thread, so those threads fail to start. Scrapes are rare (seconds apart), so one thread that
// serves one connection at a time is plenty.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/collectable.h>

#include "core/status.h"

namespace moe::serving {

class MetricsHttpServer {
 public:
  // Binds host:port (port 0 = any free port) and starts serving. Errors: the address cannot be
  // bound.
  static StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& host, int port,
      std::vector<std::weak_ptr<prometheus::Collectable>> collectables);
  ~MetricsHttpServer();  // stops accepting and joins the thread

  int port() const { return port_; }

 private:
  MetricsHttpServer() = default;
  void Run();
  void Serve(int connection);
  std::string Render();

  std::vector<std::weak_ptr<prometheus::Collectable>> collectables_;
  int listen_fd_ = -1;
  int wake_fd_[2] = {-1, -1};  // self-pipe that wakes the poll loop on shutdown
  int port_ = 0;
  std::thread thread_;
};

}  // namespace moe::serving
