// The service's Prometheus metrics (GET /metrics; names and labels in docs/serving.md):
//   http_requests_total{endpoint,status}, http_request_duration_seconds{endpoint,code},
//   http_requests_in_flight, http_open_connections, http_rejected_connections_total,
//   model_inference_time_seconds, model_batch_size, model_info{version,input,classes}, and
//   process_* (resident/virtual memory, CPU seconds, open/max fds, start time) read from
//   /proc at each scrape, as Python's prometheus_client exports them on Linux.
// prometheus-cpp stays behind this interface, so the HTTP layer only reports events.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "simdnn/model.h"

namespace simdnn::serving {

// The endpoints requests are counted by; every other path counts as "other", so that scanning
// clients cannot grow the label set without bound.
// Labels: "/predict", "/metrics", "/healthz", "/readyz", "/v2/infer" (POST
// /v2/models/.../infer), "/v2/models" (/v2 and every other /v2/models/... path), "/v2/health"
// (/v2/health/live and /ready), "/v2/explain" (POST /v2/models/.../explain), "other".
enum class Endpoint {
  kPredict, kMetrics, kHealthz, kReadyz, kV2Infer, kV2Models, kV2Health, kV2Explain, kOther
};

// "/predict" -> Endpoint::kPredict, "/v2/models/m/infer" -> Endpoint::kV2Infer, ..., anything
// else -> Endpoint::kOther.
Endpoint endpoint_of(std::string_view path);

class Metrics {
 public:
  // model_info is set from info and num_classes; the model_batch_size buckets are the powers
  // of two below max_batch, then max_batch.
  Metrics(const ModelInfo& info, size_t num_classes, size_t max_batch);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // http_requests_total: one answered request (a status outside 100..599 counts as 500).
  void count_request(Endpoint endpoint, int status);
  // http_request_duration_seconds: one request, from its first byte to its response written.
  void observe_request(Endpoint endpoint, int status, double seconds);
  // http_open_connections and http_rejected_connections_total (accepted, then closed at once
  // because the server was at its connection limit).
  void connection_opened();
  void connection_closed();
  void connection_rejected();
  // model_inference_time_seconds and model_batch_size: one predict call on `instances` rows.
  void observe_inference(double seconds, size_t instances);

  // http_requests_in_flight, for the lifetime of a guard.
  class InFlight {
   public:
    explicit InFlight(Metrics& metrics);
    ~InFlight();
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;

   private:
    Metrics& metrics_;
  };

  // Every metric in the Prometheus text format (version 0.0.4).
  std::string render() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace simdnn::serving
