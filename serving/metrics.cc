#include "simdnn/serving/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <array>
#include <map>
#include <string>
#include <utility>
#include <atomic>
#include <mutex>
#include <optional>
#include <vector>

#include "process_stats.h"

namespace simdnn::serving {

namespace {

constexpr size_t kEndpointCount = static_cast<size_t>(Endpoint::kOther) + 1;
constexpr std::array<const char*, kEndpointCount> kEndpointLabels = {
    "/predict", "/metrics", "/healthz", "/readyz", "/v2/infer", "/v2/models", "/v2/health",
    "/v2/explain", "other"};

prometheus::Histogram::BucketBoundaries batch_buckets(size_t max_batch) {
  prometheus::Histogram::BucketBoundaries b;
  for (size_t v = 1; v < max_batch; v *= 2) b.push_back(static_cast<double>(v));
  b.push_back(static_cast<double>(max_batch));
  return b;
}

}  // namespace

Endpoint endpoint_of(std::string_view path) {
  for (size_t e = 0; e < static_cast<size_t>(Endpoint::kV2Infer); ++e) {
    if (path == kEndpointLabels[e]) return static_cast<Endpoint>(e);
  }
  if (path == "/v2/health/live" || path == "/v2/health/ready") return Endpoint::kV2Health;
  if (path == "/v2") return Endpoint::kV2Models;
  if (path.starts_with("/v2/models/")) {
    if (path.ends_with("/explain")) return Endpoint::kV2Explain;
    return path.ends_with("/infer") ? Endpoint::kV2Infer : Endpoint::kV2Models;
  }
  return Endpoint::kOther;
}

struct Metrics::ModelSeries {
  prometheus::Histogram* inference_time = nullptr;
  prometheus::Histogram* batch_size = nullptr;
};

struct Metrics::Impl {
  explicit Impl(size_t max_batch)
      : batch_boundaries(batch_buckets(max_batch)),
        registry(std::make_shared<prometheus::Registry>()),
        requests(prometheus::BuildCounter()
                     .Name("http_requests_total")
                     .Help("HTTP requests answered, by endpoint and status code")
                     .Register(*registry)),
        inference_time(prometheus::BuildHistogram()
                           .Name("model_inference_time_seconds")
                           .Help("Time in model.predict per request (one batched call), by "
                                 "model and version")
                           .Register(*registry)),
        batch_size(prometheus::BuildHistogram()
                       .Name("model_batch_size")
                       .Help("Instances per request that reached the model, by model and "
                             "version")
                       .Register(*registry)),
        model_info(prometheus::BuildGauge()
                       .Name("model_info")
                       .Help("The model versions being served (1 per live version)")
                       .Register(*registry)),
        load_failures(prometheus::BuildCounter()
                          .Name("model_load_failures_total")
                          .Help("Model versions that failed to load or validate, by model")
                          .Register(*registry)),
        in_flight(prometheus::BuildGauge()
                      .Name("http_requests_in_flight")
                      .Help("Requests being handled right now")
                      .Register(*registry)
                      .Add({})),
        durations(prometheus::BuildHistogram()
                      .Name("http_request_duration_seconds")
                      .Help("Time from a request's first byte to its response written, by "
                            "endpoint and status code")
                      .Register(*registry)),
        open_connections(prometheus::BuildGauge()
                             .Name("http_open_connections")
                             .Help("Client connections open right now")
                             .Register(*registry)
                             .Add({})),
        rejected_connections(prometheus::BuildCounter()
                                 .Name("http_rejected_connections_total")
                                 .Help("Connections closed at once: the server was at "
                                       "--max-connections")
                                 .Register(*registry)
                                 .Add({})) {}

  prometheus::Histogram::BucketBoundaries batch_boundaries;
  std::shared_ptr<prometheus::Registry> registry;
  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Family<prometheus::Histogram>& inference_time;
  prometheus::Family<prometheus::Histogram>& batch_size;
  prometheus::Family<prometheus::Gauge>& model_info;
  prometheus::Family<prometheus::Counter>& load_failures;
  prometheus::Gauge& in_flight;
  prometheus::Family<prometheus::Histogram>& durations;
  prometheus::Gauge& open_connections;
  prometheus::Counter& rejected_connections;
  // Family::Add builds a metric object and looks it up under the family's lock on every call;
  // the counters are cached per (endpoint, status) instead.
  std::array<std::array<std::atomic<prometheus::Counter*>, 500>, kEndpointCount> counters{};
  std::array<std::array<std::atomic<prometheus::Histogram*>, 500>, kEndpointCount> histograms{};
  std::mutex counters_mutex;
  // By (model, version); std::map keeps the addresses stable.
  std::map<std::pair<std::string, std::string>, ModelSeries> series;
  std::vector<prometheus::Gauge*> live_info;
  std::mutex models_mutex;
};

Metrics::Metrics(size_t max_batch) : impl_(std::make_unique<Impl>(max_batch)) {}

const Metrics::ModelSeries* Metrics::model_series(const std::string& model,
                                                  const std::string& version) {
  std::lock_guard lock(impl_->models_mutex);
  auto [it, added] = impl_->series.try_emplace({model, version});
  if (added) {
    const prometheus::Labels labels{{"model", model}, {"version", version}};
    // From 1 us: one image takes about 5 us.
    it->second.inference_time = &impl_->inference_time.Add(
        labels, prometheus::Histogram::BucketBoundaries{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5,
                                                        1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3,
                                                        1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1.0});
    it->second.batch_size = &impl_->batch_size.Add(labels, impl_->batch_boundaries);
  }
  return &it->second;
}

void Metrics::set_live_models(const std::vector<LiveModelInfo>& live) {
  std::lock_guard lock(impl_->models_mutex);
  // Add (or find) the new series first and remove the stale ones after, so that a scrape in
  // between never sees a live version missing.
  std::vector<prometheus::Gauge*> now;
  for (const LiveModelInfo& m : live) {
    prometheus::Gauge& g = impl_->model_info.Add(
        {{"model", m.model},
         {"version", m.version.empty() ? "unknown" : m.version},
         {"input", std::to_string(m.input_height) + "x" + std::to_string(m.input_width)},
         {"classes", std::to_string(m.classes)}});
    g.Set(1);
    now.push_back(&g);
  }
  for (prometheus::Gauge* g : impl_->live_info) {
    if (std::find(now.begin(), now.end(), g) == now.end()) impl_->model_info.Remove(g);
  }
  impl_->live_info = std::move(now);
}

void Metrics::count_load_failure(const std::string& model) {
  impl_->load_failures.Add({{"model", model}}).Increment();
}

Metrics::~Metrics() = default;

void Metrics::count_request(Endpoint endpoint, int status) {
  if (status < 100 || status > 599) status = 500;
  const size_t e = static_cast<size_t>(endpoint);
  std::atomic<prometheus::Counter*>& slot = impl_->counters[e][status - 100];
  prometheus::Counter* c = slot.load(std::memory_order_acquire);
  if (!c) {
    std::lock_guard lock(impl_->counters_mutex);
    c = &impl_->requests.Add({{"endpoint", kEndpointLabels[e]},
                              {"status", std::to_string(status)}});
    slot.store(c, std::memory_order_release);
  }
  c->Increment();
}

void Metrics::observe_request(Endpoint endpoint, int status, double seconds) {
  if (status < 100 || status > 599) status = 500;
  const size_t e = static_cast<size_t>(endpoint);
  std::atomic<prometheus::Histogram*>& slot = impl_->histograms[e][status - 100];
  prometheus::Histogram* h = slot.load(std::memory_order_acquire);
  if (!h) {
    std::lock_guard lock(impl_->counters_mutex);
    h = slot.load(std::memory_order_acquire);
    if (!h) {
      // From 25 us (a cached answer on loopback) to 10 s (a slow client's upload).
      h = &impl_->durations.Add({{"endpoint", kEndpointLabels[e]}, {"code", std::to_string(status)}},
                                prometheus::Histogram::BucketBoundaries{
                                    2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2,
                                    2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0});
      slot.store(h, std::memory_order_release);
    }
  }
  h->Observe(seconds);
}

void Metrics::connection_opened() { impl_->open_connections.Increment(); }
void Metrics::connection_closed() { impl_->open_connections.Decrement(); }
void Metrics::connection_rejected() { impl_->rejected_connections.Increment(); }

void Metrics::observe_inference(const ModelSeries& series, double seconds, size_t instances) {
  series.inference_time->Observe(seconds);
  series.batch_size->Observe(static_cast<double>(instances));
}

Metrics::InFlight::InFlight(Metrics& metrics) : metrics_(metrics) {
  metrics_.impl_->in_flight.Increment();
}

Metrics::InFlight::~InFlight() { metrics_.impl_->in_flight.Decrement(); }

namespace {

prometheus::MetricFamily process_family(const char* name, const char* help,
                                        prometheus::MetricType type, double value) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  prometheus::ClientMetric m;
  if (type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(m);
  return f;
}

}  // namespace

std::string Metrics::render() const {
  std::vector<prometheus::MetricFamily> families = impl_->registry->Collect();
  // Read at each scrape rather than kept in the registry: they are the process's, not ours.
  if (const std::optional<ProcessStats> p = read_process_stats()) {
    using prometheus::MetricType;
    families.push_back(process_family("process_resident_memory_bytes",
                                      "Resident memory size in bytes.", MetricType::Gauge,
                                      p->resident_memory_bytes));
    families.push_back(process_family("process_virtual_memory_bytes",
                                      "Virtual memory size in bytes.", MetricType::Gauge,
                                      p->virtual_memory_bytes));
    families.push_back(process_family("process_cpu_seconds_total",
                                      "Total user and system CPU time spent in seconds.",
                                      MetricType::Counter, p->cpu_seconds));
    families.push_back(process_family("process_open_fds", "Number of open file descriptors.",
                                      MetricType::Gauge, p->open_fds));
    families.push_back(process_family("process_max_fds",
                                      "Maximum number of open file descriptors.",
                                      MetricType::Gauge, p->max_fds));
    families.push_back(process_family("process_start_time_seconds",
                                      "Start time of the process since unix epoch in seconds.",
                                      MetricType::Gauge, p->start_time_seconds));
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace simdnn::serving
