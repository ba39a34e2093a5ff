// Internal: what the server answers, independent of the HTTP transport. The transport
// (http_server.cc) turns each complete request into a Request and sends back what handle()
// answers; its own errors (malformed requests, limits, timeouts) and the connection lifecycle
// stay there. Routing, decoding, inference, the response bodies and the metrics are here.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "access_log.h"
#include "auth.h"
#include "http_message.h"
#include "model_monitor.h"
#include "oip.h"
#include "simdnn/model.h"
#include "simdnn/serving/metrics.h"
#include "simdnn/serving/model_repository.h"
#include "simdnn/serving/predictions.h"
#include "simdnn/serving/server.h"
#include "worker_pool.h"

namespace simdnn::serving {

// What handle() learns about a request while routing it, for the X-Request-Id header and the
// access log line.
struct Exchange {
  std::string id;              // X-Request-Id: the client's (sanitised) or a generated one
  bool model = false;          // a model endpoint was reached (log its name and version)
  // The model version that computed the answer (set once the request resolved its model, for
  // the X-Model-Name/X-Model-Version headers, the access log and whoever records predictions).
  // Held until the reply is sent, so the version outlives a reload that retires it.
  std::shared_ptr<const ModelVersion> served;
  std::optional<size_t> predicted_class;  // of the first instance
  float confidence = 0;
};

// OIP's binary tensor extension (an Inference-Header-Content-Length header) is not supported:
// the 400 reply for a request that uses it, nothing otherwise (oip_service.cc).
std::optional<Reply> refuse_binary_tensors(const Request& request);

// Each endpoint method counts itself in http_requests_in_flight while it runs; counting the
// answered requests (http_requests_total) is the HTTP layer's job, since it also answers
// requests that never get here (unknown paths, bodies too large).
class PredictionService {
 public:
  // One model handed over in memory, named options.model_name ("model" when empty). `options`
  // must outlive the service (PredictionServer owns both).
  PredictionService(Model model, const ServeOptions& options);
  // The models of a repository (or --model FILE), reloaded as it changes.
  PredictionService(RepositoryOptions repository, const ServeOptions& options);

  // Routes one request to its endpoint, counts the answer in http_requests_total, adds the
  // X-Request-Id header and writes the access log line. Never throws: an exception inside an
  // endpoint becomes a 500 reply.
  Reply handle(const Request& request);

  // POST /predict. content_type: the Content-Type header ("" when absent); top_k: the ?top_k=
  // query parameter, when given; body: a JSON document or an encoded image.
  Reply predict(std::string_view content_type, std::optional<std::string_view> top_k,
                std::string_view body) {
    Exchange exchange;
    return predict(content_type, top_k, body, exchange);
  }
  // GET /healthz: the process is up.
  Reply healthz();
  // GET /readyz: 200 with the default model's version until stop_ready(), then 503 (also
  // 503 while no model is live).
  Reply readyz();
  // GET /metrics.
  Reply metrics_text();
  // A reply the transport makes itself (a malformed request, a limit), counted like the
  // others in http_requests_total.
  void count_transport_reply(std::string_view path, int status) {
    metrics_.count_request(endpoint_of(path), status);
  }
  // http_request_duration_seconds, measured by the transport for every answered request.
  void observe_request(std::string_view path, int status, double seconds) {
    metrics_.observe_request(endpoint_of(path), status, seconds);
  }

  // /readyz answers 503 from now on.
  void stop_ready() { ready_ = false; }

  Metrics& metrics() { return metrics_; }
  ModelRepository& repository() { return *repository_; }
  const ServeOptions& options() const { return options_; }

 private:
  PredictionService(const ServeOptions& options, bool);  // the common part
  // The model that POST /predict and unpinned /readyz use: options.model_name when live, else
  // the first live model by name.
  Resolution default_model(const ModelSet& live, std::string_view request_id) const;
  Reply route(const Request& request, Exchange& exchange);
  // POST /v2/repository/index and /v2/repository/models/{name}/load|unload.
  Reply route_repository(const Request& request);
  Reply predict(std::string_view content_type, std::optional<std::string_view> top_k,
                std::string_view body, Exchange& exchange);
  // Everything under /v2 (oip_service.cc).
  Reply route_v2(const Request& request, Exchange& exchange);
  Reply oip_infer(const Request& request, Exchange& exchange);
  // POST /v2/models/{name}/feedback (feedback.cc).
  Reply feedback(const Request& request, std::string_view model);
  // The OIP body limits for a model: its input size, --max-batch, the FP32 range.
  OipLimits oip_limits(const ModelInfo& info) const;
  // POST /v2/models/{name}/explain (oip_explain.cc).
  Reply oip_explain(const Request& request, Exchange& exchange);
  // The model's predictions for worker.x: runs the model and observes the inference metrics;
  // records the first instance's class in `exchange`.
  const Tensor& run_model(const ModelVersion& version, Worker& worker, Exchange& exchange);

  const ServeOptions& options_;
  WorkerPool workers_;
  Metrics metrics_;
  std::unique_ptr<ModelRepository> repository_;
  TokenCheck token_;
  AccessLog access_log_;
  ModelMonitor monitor_;  // the prediction store and the live-quality metrics
  std::atomic<bool> ready_{true};
  // Image decodes running now, and the most allowed (options.max_concurrent_decodes, or one
  // per I/O thread when 0).
  std::atomic<size_t> decoding_{0};
  size_t max_decodes_ = 1;
};

}  // namespace simdnn::serving
