// PredictionService's POST /v2/models/{name}/feedback: the ground truth for a prediction, by
// its request id, into the prediction store and the live-accuracy metrics (docs/serving.md).
#include <string>

#include "feedback_request.h"
#include "prediction_service.h"

namespace simdnn::serving {

Reply PredictionService::feedback(const Request& request, std::string_view model) {
  Metrics::InFlight guard(metrics_);
  // The label is checked against the primary live version's classes (a version with other
  // classes under the same name would be another model).
  const std::shared_ptr<const ModelSet> live = repository_->live();
  Resolution resolved = live->resolve(model, std::nullopt, "");
  if (!resolved.version) return error_reply(resolved.status, resolved.error);
  const ModelVersion& primary = *live->find(model)->primary;
  const std::string name(model);
  FeedbackRequest fb;
  if (auto error = parse_feedback_json(request.body, primary.model.info().class_names,
                                       primary.model.num_classes(), fb)) {
    return error_reply(error->status, error->message);
  }
  if (!monitor_.has_store()) {
    return error_reply(503, "feedback needs the prediction store: start serve with --store FILE");
  }
  // Waits for the store's writer (it commits what is queued, then looks the id up): one
  // transaction, on this thread.
  const FeedbackOutcome out = monitor_.feedback(name, fb.request_id, fb.label);
  switch (out.status) {
    case FeedbackStatus::kUnknown:
      return error_reply(404, "no stored prediction of model \"" + name +
                                  "\" has request id " + json_quote(fb.request_id) +
                                  " (never made, dropped from a full store queue, or pruned)");
    case FeedbackStatus::kDuplicate:
      return error_reply(409, "the prediction " + json_quote(fb.request_id) +
                                  " already has feedback; the first label stays");
    case FeedbackStatus::kRecorded:
      break;
  }
  std::string body = "{\"model_name\":" + json_quote(name) +
                     ",\"model_version\":" + json_quote(out.version) +
                     ",\"request_id\":" + json_quote(fb.request_id) +
                     ",\"predicted_class\":" + std::to_string(out.predicted_class) +
                     ",\"label\":" + std::to_string(fb.label) +
                     ",\"correct\":" + (out.correct ? "true" : "false") + "}";
  return {200, std::move(body), kJsonContentType, {}};
}

}  // namespace simdnn::serving
