// The prediction service behind tools/serve: an HTTP server that answers POST /predict with a
// model's class probabilities, plus /metrics (Prometheus), /healthz and /readyz. Kept apart
// from serve.cc's flag parsing and signal handling so that tests can run a server in-process on
// a free loopback port. Request and response formats: docs/serving.md.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <thread>

#include "simdnn/model.h"

namespace simdnn::serving {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (see PredictionServer::port())
  // HTTP worker threads. cpp-httplib keeps a keep-alive connection on one worker until it
  // closes, so this is also the number of connections served at the same time; each worker
  // has its own inference buffers.
  int threads = 16;
  size_t max_body_bytes = size_t{8} << 20;
  size_t max_batch = 256;  // instances per request
  size_t max_image_pixels = size_t{4096} * 4096;
  int default_top_k = 3;
  // Requests served on one keep-alive connection before the server closes it.
  size_t keep_alive_max_requests = 100000;
  int keep_alive_timeout_seconds = 5;
  // How long a worker waits for the next bytes of a request. A slow or dishonest client (a
  // Content-Length larger than what it sends) holds a worker for this long, so it is short.
  int read_timeout_seconds = 2;
};

class PredictionServer {
 public:
  // Serves `model` from options.threads workers, which share it (each predicts into buffers of
  // its own). Throws std::invalid_argument for bad options.
  PredictionServer(Model model, ServeOptions options);
  ~PredictionServer();  // stop() and wait for the listener
  PredictionServer(const PredictionServer&) = delete;
  PredictionServer& operator=(const PredictionServer&) = delete;

  // Binds options.host:options.port and starts listening (connections queue from here on);
  // returns the bound port. Throws std::runtime_error when binding fails.
  int bind();
  // Serves until stop(): accepts connections and dispatches them to the workers. On stop it
  // stops accepting, lets in-flight requests finish, then returns. Requires bind().
  void run();
  // bind(), then run() on a background thread; returns the port once the server answers.
  int start();
  // Thread-safe and idempotent; not async-signal-safe (call it from a thread that watches
  // signals, not from a signal handler). Also makes /readyz answer 503.
  void stop();
  // Waits for a start()ed server's background thread.
  void wait();

  int port() const { return port_; }
  const ModelInfo& model_info() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
  std::thread listener_;
};

}  // namespace simdnn::serving
