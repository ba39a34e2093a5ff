#include "model_monitor.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <chrono>
#include <cmath>

namespace simdnn::serving {

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

prometheus::MetricFamily family(const char* name, const char* help,
                                prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

prometheus::ClientMetric sample(std::vector<prometheus::ClientMetric::Label> labels,
                                prometheus::MetricType type, double value) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  if (type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  return m;
}

}  // namespace

ModelMonitor::ModelMonitor(MonitorOptions options)
    : options_(std::move(options)), registry_(std::make_shared<prometheus::Registry>()) {
  if (!options_.store.empty()) {
    store_ = std::make_unique<PredictionStore>(options_.store, options_.store_options);
  }
  predictions_family_ = &prometheus::BuildCounter()
                             .Name("model_predictions_total")
                             .Help("Predictions made, by model, version and predicted class")
                             .Register(*registry_);
  confidence_family_ = &prometheus::BuildHistogram()
                            .Name("model_prediction_confidence")
                            .Help("Probability of the predicted class, by model and version")
                            .Register(*registry_);
  feedback_family_ = &prometheus::BuildCounter()
                          .Name("model_feedback_total")
                          .Help("Ground-truth labels received (POST .../feedback), by model, "
                                "version and whether the prediction was correct")
                          .Register(*registry_);
}

ModelMonitor::~ModelMonitor() = default;

MonitoredVersion& ModelMonitor::version(const std::string& model, const std::string& version,
                                        const ModelInfo& info, size_t num_classes) {
  std::lock_guard lock(mutex_);
  auto key = std::make_pair(model, version);
  if (auto it = versions_.find(key); it != versions_.end()) return *it->second;
  auto mv = std::make_unique<MonitoredVersion>();
  mv->model = model;
  mv->version = version;
  for (size_t c = 0; c < num_classes; ++c) {
    // The class name when the model has them: dashboards read "Sneaker", not "7".
    mv->class_labels.push_back(c < info.class_names.size() ? info.class_names[c]
                                                           : std::to_string(c));
    mv->predictions.push_back(&predictions_family_->Add(
        {{"model", model}, {"version", version}, {"class", mv->class_labels.back()}}));
  }
  mv->confidence = &confidence_family_->Add(
      {{"model", model}, {"version", version}},
      prometheus::Histogram::BucketBoundaries{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9,
                                              0.95, 0.99});
  mv->correct =
      &feedback_family_->Add({{"model", model}, {"version", version}, {"outcome", "correct"}});
  mv->incorrect =
      &feedback_family_->Add({{"model", model}, {"version", version}, {"outcome", "incorrect"}});
  mv->quality = std::make_unique<ModelQuality>(info.reference_profile, num_classes,
                                               options_.quality);
  MonitoredVersion& out = *mv;
  versions_.emplace(std::move(key), std::move(mv));
  return out;
}

void ModelMonitor::observe(MonitoredVersion& mv, const std::string& request_id, const Tensor& x,
                           const Tensor& probs, float pixel_scale) {
  const size_t rows = probs.rows(), classes = probs.cols();
  if (classes == 0 || classes != mv.predictions.size()) return;
  const size_t inputs = x.rows() == rows ? x.cols() : 0;
  const int64_t time = store_ ? now_ms() : 0;
  for (size_t r = 0; r < rows; ++r) {
    const float* p = probs.data() + r * classes;
    size_t best = 0;
    for (size_t c = 1; c < classes; ++c) {
      if (p[c] > p[best]) best = c;
    }
    mv.predictions[best]->Increment();
    mv.confidence->Observe(p[best]);
    const float* features = inputs ? x.data() + r * inputs : nullptr;
    mv.quality->observe_prediction(
        static_cast<int32_t>(best),
        features ? mean_intensity(std::span<const float>(features, inputs), pixel_scale) : 0.0);
    if (!store_) continue;

    PredictionRecord rec;
    rec.request_id = r == 0 ? request_id : request_id + "#" + std::to_string(r);
    rec.time_ms = time;
    rec.model = mv.model;
    rec.version = mv.version;
    rec.predicted_class = static_cast<int32_t>(best);
    rec.confidence = p[best];
    // Top-k by probability, the lower class first on ties (as the responses rank them).
    const size_t k = std::min(options_.top_k, classes);
    std::vector<int32_t> order(classes);
    for (size_t c = 0; c < classes; ++c) order[c] = static_cast<int32_t>(c);
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                      [p](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    rec.top_k.reserve(k);
    for (size_t i = 0; i < k; ++i) rec.top_k.emplace_back(order[i], p[order[i]]);
    if (options_.store_inputs && features && pixel_scale > 0.0f) {
      // The pixels back from the model inputs: one byte each, as the request sent them.
      rec.input.resize(inputs);
      for (size_t i = 0; i < inputs; ++i) {
        const float v = std::round(features[i] / pixel_scale);
        rec.input[i] = static_cast<uint8_t>(std::clamp(v, 0.0f, 255.0f));
      }
    }
    store_->record(std::move(rec));
  }
}

FeedbackOutcome ModelMonitor::feedback(const std::string& model, const std::string& request_id,
                                       int32_t label) {
  FeedbackOutcome out;
  if (!store_) return out;
  const FeedbackResult r = store_->record_feedback(model, request_id, label);
  out.status = r.status;
  out.version = r.version;
  out.predicted_class = r.predicted_class;
  if (r.status != FeedbackStatus::kRecorded) return out;
  out.correct = label == r.predicted_class;
  MonitoredVersion* mv = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (auto it = versions_.find({r.model, r.version}); it != versions_.end()) {
      mv = it->second.get();
    }
  }
  // A prediction of a version this process never served (made before a restart) has no
  // series here; its feedback is stored all the same.
  if (mv) {
    (out.correct ? mv->correct : mv->incorrect)->Increment();
    mv->quality->observe_feedback(out.correct);
  }
  return out;
}

std::string ModelMonitor::render() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  auto accuracy = family("model_live_accuracy",
                         "Fraction of correct predictions over the version's last feedbacks "
                         "(serve --accuracy-window)",
                         MetricType::Gauge);
  auto prediction_psi = family("model_prediction_drift_psi",
                               "PSI of the predicted-class mix over the version's last "
                               "predictions (serve --drift-window) against its training set",
                               MetricType::Gauge);
  auto input_psi = family("model_input_drift_psi",
                          "PSI of the mean-input-intensity histogram over the version's last "
                          "predictions against its training set",
                          MetricType::Gauge);
  {
    std::lock_guard lock(mutex_);
    for (const auto& [key, mv] : versions_) {
      const ModelQuality::Snapshot s = mv->quality->snapshot();
      std::vector<prometheus::ClientMetric::Label> labels = {{"model", mv->model},
                                                             {"version", mv->version}};
      if (s.live_accuracy) {
        accuracy.metric.push_back(sample(labels, MetricType::Gauge, *s.live_accuracy));
      }
      if (s.prediction_psi) {
        prediction_psi.metric.push_back(sample(labels, MetricType::Gauge, *s.prediction_psi));
      }
      if (s.input_psi) input_psi.metric.push_back(sample(labels, MetricType::Gauge, *s.input_psi));
    }
  }
  // A family without samples is left out: an absent profile means an absent metric.
  for (auto* f : {&accuracy, &prediction_psi, &input_psi}) {
    if (!f->metric.empty()) families.push_back(std::move(*f));
  }
  if (store_) {
    const PredictionStoreStats s = store_->stats();
    struct {
      const char* name;
      const char* help;
      MetricType type;
      double value;
    } const store_metrics[] = {
        {"prediction_store_written_total", "Prediction records committed to the store",
         MetricType::Counter, static_cast<double>(s.written)},
        {"prediction_store_dropped_total",
         "Prediction records dropped because the store's queue was full", MetricType::Counter,
         static_cast<double>(s.dropped)},
        {"prediction_store_failed_total",
         "Prediction records lost to a failed transaction (disk full, I/O error)",
         MetricType::Counter, static_cast<double>(s.failed)},
        {"prediction_store_queue_depth", "Prediction records waiting for the store's writer",
         MetricType::Gauge, static_cast<double>(s.queue_depth)},
    };
    for (const auto& m : store_metrics) {
      auto f = family(m.name, m.help, m.type);
      f.metric.push_back(sample({}, m.type, m.value));
      families.push_back(std::move(f));
    }
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace simdnn::serving
