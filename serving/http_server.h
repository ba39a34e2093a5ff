// Internal: the HTTP layer, cpp-httplib. It maps requests onto PredictionService and owns the
// transport's lifecycle; nothing else in serving/ includes <httplib.h>, so replacing the HTTP
// library means replacing http_server.cc.
#pragma once

#include <memory>
#include <string>

namespace simdnn::serving {

class PredictionService;

class HttpServer {
 public:
  // Routes to `service` and configures the server from service.options(); the service must
  // outlive this object.
  explicit HttpServer(PredictionService& service);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens; returns the bound port (any free one for port 0). Throws
  // std::runtime_error when binding fails.
  int bind(const std::string& host, int port);
  // Accepts and serves until stop(); returns after in-flight requests have finished. Returns
  // at once if stop() came first.
  void run();
  // Waits (up to 5 s) until run() accepts connections, or stop() was called.
  void wait_until_running();
  // Thread-safe and idempotent; not async-signal-safe.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace simdnn::serving
