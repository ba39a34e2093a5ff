// The prediction service behind tools/serve: an HTTP server that answers POST /predict with a
// model's class probabilities, plus /metrics (Prometheus), /healthz and /readyz. Kept apart
// from serve.cc's flag parsing and signal handling so that tests can run a server in-process on
// a free loopback port. Request and response formats: docs/serving.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>

#include "simdnn/model.h"
#include "simdnn/serving/model_repository.h"

namespace simdnn::serving {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (see PredictionServer::port())
  // Threads running the event loop (all connections) and, inline, inference; each has its own
  // inference buffers. 0: one per hardware core. Open connections cost memory, not threads.
  int threads = 0;
  size_t max_body_bytes = size_t{8} << 20;  // also for chunked bodies; more gets 413
  size_t max_batch = 256;  // instances per request
  size_t max_image_pixels = size_t{4096} * 4096;
  // Longer side over shorter side of a decoded image; more gets 400.
  double max_image_aspect = 32.0;
  // Image decodes running at once (each holds up to max_image_pixels bytes); more get 503
  // with Retry-After. 0: one per I/O thread.
  size_t max_concurrent_decodes = 0;
  int default_top_k = 3;

  // Transport limits (serving/http_server.cc). A connection costs at most about
  // max_header_bytes + 64 KiB of buffers plus the body being received (max_body_bytes).
  size_t max_connections = 1024;     // beyond it a new connection is accepted and closed at once
  size_t max_header_bytes = 16 * 1024;  // request line + header fields; more gets 431
  size_t max_header_fields = 100;       // more gets 431
  // Request-body bytes being received at once over all connections (each body counts its
  // Content-Length, a chunked one max_body_bytes); a body beyond it gets 503 and a close.
  size_t max_inflight_body_bytes = size_t{256} << 20;
  // Deadlines from the first byte of a request: its whole header, then its whole body (a
  // slowloris client is cut off here, whatever its pace). Expiry closes the connection
  // without an answer (the socket is gone, as with nginx) and is counted as a 408.
  int header_timeout_seconds = 10;
  int body_timeout_seconds = 30;
  // An idle keep-alive connection (or a new one that sends nothing) is closed after this.
  int keep_alive_timeout_seconds = 5;
  // Requests served on one keep-alive connection before the server closes it.
  size_t keep_alive_max_requests = 100000;
  // On stop(): in-flight requests get this long to finish before every connection is cut.
  int drain_seconds = 10;
  // SO_REUSEPORT: lets a second server (the next version) bind the same port while this one
  // drains, for a blue/green switch. Off: a port in use is an error.
  bool reuse_port = false;
  // TLS (TLS 1.2 or later) when both are set: PEM certificate chain and private key files.
  std::string tls_cert;
  std::string tls_key;

  // Protocol layer (prediction_service.*; flags in tools/serve.cc).
  // The Open Inference Protocol name of an in-memory model ("" -> "model"), and the model that
  // POST /predict and /readyz use when several are served ("" -> the first by name).
  std::string model_name;
  std::string auth_token;     // bearer token; "" -> no authentication
  bool auth_inference = false;  // also require the token on the inference endpoints
  std::string access_log;     // JSON-lines access log: "" off, "-" stdout, or a file
  double log_sample = 1.0;    // fraction of requests logged, 0..1

  // Prediction store and live quality (serving/model_monitor.*; docs/serving.md).
  std::string store;            // SQLite file of predictions and feedback; "" -> none
  bool store_inputs = false;    // also store each input's pixels (privacy: off by default)
  double store_max_age_hours = 0;  // retention by age; 0 -> keep
  size_t store_max_rows = 0;       // retention by rows; 0 -> no limit
  size_t store_queue = 65536;      // records waiting for the writer; more are dropped
  size_t accuracy_window = 200;    // model_live_accuracy: the last N feedbacks per version
  size_t drift_window = 1000;      // the drift PSIs: the last N predictions per version
};

class PredictionServer {
 public:
  // Serves `model` from options.threads threads, which share it (each predicts into buffers of
  // its own). Throws std::invalid_argument for bad options, std::runtime_error for unreadable
  // TLS files.
  PredictionServer(Model model, ServeOptions options);
  // Serves the models of a repository directory or a --model file (model_repository.h),
  // reloading them as they change. Also throws what ModelRepository's constructor throws.
  PredictionServer(RepositoryOptions models, ServeOptions options);
  ~PredictionServer();  // stop() and wait for the listener
  PredictionServer(const PredictionServer&) = delete;
  PredictionServer& operator=(const PredictionServer&) = delete;

  // Binds options.host:options.port and starts listening (connections queue from here on);
  // returns the bound port. Throws std::runtime_error when binding fails.
  int bind();
  // Serves until stop() on options.threads threads (this one included). On stop it stops
  // accepting, closes idle connections, lets in-flight requests finish (up to the drain
  // deadline), then returns. Requires bind().
  void run();
  // bind(), then run() on a background thread; returns the port once the server answers.
  int start();
  // Drains: stops accepting at once, makes /readyz answer 503, closes idle keep-alive
  // connections, lets requests in flight finish, and cuts every connection still open after
  // `deadline` (a slowloris client cannot hold the shutdown). Thread-safe; a later call can
  // only shorten the deadline (0 cuts the drain now). Not async-signal-safe (call it from a thread
  // that watches signals, not from a signal handler).
  void stop(std::chrono::milliseconds deadline);
  // stop() with options.drain_seconds.
  void stop();
  // Waits for a start()ed server's background thread.
  void wait();

  int port() const { return port_; }
  // The models being served: live() for the current set, reload() and friends to change it.
  ModelRepository& models();
  // The options in use (threads resolved: never 0).
  const ServeOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
  std::thread listener_;
};

}  // namespace simdnn::serving
