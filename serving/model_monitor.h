// Internal: what the service records about its predictions, and the live-quality metrics it
// derives from them (docs/serving.md, "Prediction store, feedback, quality and drift"):
//   model_predictions_total{model,version,class}, model_prediction_confidence{model,version},
//   model_feedback_total{model,version,outcome}, model_live_accuracy{model,version},
//   model_prediction_drift_psi{model,version}, model_input_drift_psi{model,version} (only for
//   models with a reference profile), and, with a store, prediction_store_written_total,
//   prediction_store_dropped_total, prediction_store_failed_total, prediction_store_queue_depth.
// It owns the prediction store (<simdnn/prediction_store.h>) when serve --store is given. Its
// metrics render as a text block of their own, appended to Metrics::render().
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model_quality.h"
#include "simdnn/model.h"
#include "simdnn/prediction_store.h"
#include "simdnn/tensor.h"

namespace prometheus {
class Registry;
class Counter;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace simdnn::serving {

struct MonitorOptions {
  std::filesystem::path store;  // "" : no store (and no feedback)
  bool store_inputs = false;    // also store each input's pixels (privacy: off by default)
  PredictionStoreOptions store_options;
  ModelQualityOptions quality;
  size_t top_k = 3;  // classes kept per stored prediction
};

// One model version's series and windows; created on first use, kept for the process's life.
struct MonitoredVersion {
  std::string model, version;
  std::vector<std::string> class_labels;      // the class label values
  std::vector<prometheus::Counter*> predictions;  // per class
  prometheus::Histogram* confidence = nullptr;
  prometheus::Counter* correct = nullptr;
  prometheus::Counter* incorrect = nullptr;
  std::unique_ptr<ModelQuality> quality;
};

// What POST /v2/models/{name}/feedback learned.
struct FeedbackOutcome {
  FeedbackStatus status = FeedbackStatus::kUnknown;
  std::string version;           // of the prediction (kRecorded, kDuplicate)
  int32_t predicted_class = -1;  // "
  bool correct = false;          // kRecorded: label == predicted_class
};

class ModelMonitor {
 public:
  // Opens the store when options.store is set (throws StoreError naming the file).
  explicit ModelMonitor(MonitorOptions options);
  ~ModelMonitor();
  ModelMonitor(const ModelMonitor&) = delete;
  ModelMonitor& operator=(const ModelMonitor&) = delete;

  bool has_store() const { return store_ != nullptr; }

  // The state of (model, version), made from `info` on first use. Thread-safe.
  MonitoredVersion& version(const std::string& model, const std::string& version,
                            const ModelInfo& info, size_t num_classes);

  // One request's predictions: probs [rows, classes] computed from x [rows, inputs] (model
  // inputs, pixel * pixel_scale). Counts them, feeds the drift windows and queues one store
  // record per row: row 0 under request_id, row i > 0 under "request_id#i". Never blocks on the
  // store (a full queue drops and counts). Thread-safe.
  void observe(MonitoredVersion& mv, const std::string& request_id, const Tensor& x,
               const Tensor& probs, float pixel_scale);

  // Stores `label` as the truth for model's prediction `request_id` and, when recorded, counts
  // it in the version's feedback series and live accuracy. Needs a store (has_store()).
  // Throws StoreError when the database fails.
  FeedbackOutcome feedback(const std::string& model, const std::string& request_id,
                           int32_t label);

  // The metrics above in the Prometheus text format.
  std::string render() const;

  PredictionStore* store() { return store_.get(); }

 private:
  MonitorOptions options_;
  std::unique_ptr<PredictionStore> store_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* predictions_family_ = nullptr;
  prometheus::Family<prometheus::Histogram>* confidence_family_ = nullptr;
  prometheus::Family<prometheus::Counter>* feedback_family_ = nullptr;
  mutable std::mutex mutex_;  // guards versions_ and the families' Add
  std::map<std::pair<std::string, std::string>, std::unique_ptr<MonitoredVersion>> versions_;
};

}  // namespace simdnn::serving
