// The service's Prometheus metrics (GET /metrics; names and labels in docs/serving.md):
//   http_requests_total{endpoint,status}, http_request_duration_seconds{endpoint,code},
//   http_requests_in_flight, http_open_connections, http_rejected_connections_total,
//   model_inference_time_seconds{model,version}, model_batch_size{model,version},
//   model_info{model,version,input,classes} (the live versions), model_load_failures_total{model},
//   and
//   process_* (resident/virtual memory, CPU seconds, open/max fds, start time) read from
//   /proc at each scrape, as Python's prometheus_client exports them on Linux.
// prometheus-cpp stays behind this interface, so the HTTP layer only reports events.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

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

// One live model version, as model_info shows it.
struct LiveModelInfo {
  std::string model;
  std::string version;
  size_t input_height = 0;
  size_t input_width = 0;
  size_t classes = 0;
};

class Metrics {
 public:
  // The model_batch_size buckets are the powers of two below max_batch, then max_batch.
  explicit Metrics(size_t max_batch);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // One model version's inference series (model_inference_time_seconds and model_batch_size
  // with its labels). Created on first use and kept for the process's life (Prometheus
  // counters must not vanish while scraped), so the pointer stays valid. Thread-safe.
  struct ModelSeries;
  const ModelSeries* model_series(const std::string& model, const std::string& version);
  // model_info: exactly these versions are live now (the previous set is replaced).
  void set_live_models(const std::vector<LiveModelInfo>& live);
  // model_load_failures_total{model}: a version failed to load or validate.
  void count_load_failure(const std::string& model);

  // http_requests_total: one answered request (a status outside 100..599 counts as 500).
  void count_request(Endpoint endpoint, int status);
  // http_request_duration_seconds: one request, from its first byte to its response written.
  void observe_request(Endpoint endpoint, int status, double seconds);
  // http_open_connections and http_rejected_connections_total (accepted, then closed at once
  // because the server was at its connection limit).
  void connection_opened();
  void connection_closed();
  void connection_rejected();
  // model_inference_time_seconds and model_batch_size: one predict call on `instances` rows
  // by the version whose series this is.
  void observe_inference(const ModelSeries& series, double seconds, size_t instances);

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
