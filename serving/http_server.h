// Internal: the HTTP transport, event-driven on Boost.Beast/Asio (http_server.cc: listening,
// threads, drain; http_session.cc: one connection). It parses HTTP/1.x, enforces the limits
// in ServeOptions, hands each complete request to PredictionService::handle and writes the
// reply. Nothing else in serving/ includes Boost.
#pragma once

#include <chrono>
#include <memory>
#include <string>

namespace simdnn::serving {

class PredictionService;

class HttpServer {
 public:
  // Serves `service` with the limits in service.options(); the service must outlive this
  // object. Throws std::runtime_error when the TLS certificate or key cannot be loaded.
  explicit HttpServer(PredictionService& service);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens (connections queue from here on); returns the bound port (any free one
  // for port 0). Throws std::runtime_error naming host:port when binding fails (a port in use
  // is refused unless options.reuse_port).
  int bind(const std::string& host, int port);
  // Serves on options.threads threads (this one included) until a stop()'s drain has ended.
  // Returns at once after a drain that came first.
  void run();
  // Waits (up to 5 s) until run() has started, or stop() was called.
  void wait_until_running();
  // Drain: stop accepting, close idle connections, finish requests in flight, and cut what is
  // still open after `deadline`. Thread-safe; a later call can only shorten the deadline.
  void stop(std::chrono::milliseconds deadline);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace simdnn::serving
