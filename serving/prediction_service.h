// Internal: what the server answers, independent of the HTTP library. http_server.cc maps
// cpp-httplib requests onto it (a later HTTP layer replaces only that file): routing, the
// transport's own errors and the lifecycle stay there; decoding, inference, the response
// bodies and the metrics are here.
#pragma once

#include <atomic>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "simdnn/model.h"
#include "simdnn/serving/metrics.h"
#include "simdnn/serving/predictions.h"
#include "simdnn/serving/server.h"
#include "worker_pool.h"

namespace simdnn::serving {

constexpr const char* kJsonContentType = "application/json";
constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// A response: status, body and its Content-Type.
struct Reply {
  int status = 200;
  std::string body;
  const char* content_type = kJsonContentType;
};

// {"error": message}, the body of every error response.
std::string error_body(std::string_view message);
Reply error_reply(int status, std::string_view message);

// Each endpoint method counts itself in http_requests_in_flight while it runs; counting the
// answered requests (http_requests_total) is the HTTP layer's job, since it also answers
// requests that never get here (unknown paths, bodies too large).
class PredictionService {
 public:
  // `options` must outlive the service (PredictionServer owns both).
  PredictionService(Model model, const ServeOptions& options);

  // POST /predict. content_type: the Content-Type header ("" when absent); top_k: the ?top_k=
  // query parameter, when given; body: a JSON document or an encoded image.
  Reply predict(std::string_view content_type, const std::optional<std::string>& top_k,
                std::string_view body);
  // GET /healthz: the process is up.
  Reply healthz();
  // GET /readyz: 200 with the model version until stop_ready(), then 503.
  Reply readyz();
  // GET /metrics.
  Reply metrics_text();

  // /readyz answers 503 from now on.
  void stop_ready() { ready_ = false; }

  Metrics& metrics() { return metrics_; }
  const ModelInfo& info() const { return workers_.info(); }
  const ServeOptions& options() const { return options_; }

 private:
  const ServeOptions& options_;
  WorkerPool workers_;
  Metrics metrics_;
  PredictionWriter writer_;
  std::string version_json_;
  std::atomic<bool> ready_{true};
};

}  // namespace simdnn::serving
