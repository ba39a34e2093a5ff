// PredictionService's POST /v2/models/{name}/feedback: the ground truth for a prediction, by
// its request id, into the prediction store and the live-accuracy metrics (docs/serving.md).
#include <string>

#include "feedback_request.h"
#include "prediction_service.h"

namespace simdnn::serving {

Reply PredictionService::feedback(const Request& request, std::string_view model) {
  Metrics::InFlight guard(metrics_);
  if (model != model_name_) {
    return error_reply(404, "unknown model \"" + std::string(model) + "\": this server serves \"" +
                                model_name_ + "\"");
  }
  FeedbackRequest fb;
  const ModelInfo& info = workers_.info();
  if (auto error = parse_feedback_json(request.body, info.class_names, workers_.num_classes(), fb)) {
    return error_reply(error->status, error->message);
  }
  if (!monitor_.has_store()) {
    return error_reply(503, "feedback needs the prediction store: start serve with --store FILE");
  }
  // Waits for the store's writer (it commits what is queued, then looks the id up): one
  // transaction, on this thread.
  const FeedbackOutcome out = monitor_.feedback(model_name_, fb.request_id, fb.label);
  switch (out.status) {
    case FeedbackStatus::kUnknown:
      return error_reply(404, "no stored prediction of model \"" + model_name_ +
                                  "\" has request id " + json_quote(fb.request_id) +
                                  " (never made, dropped from a full store queue, or pruned)");
    case FeedbackStatus::kDuplicate:
      return error_reply(409, "the prediction " + json_quote(fb.request_id) +
                                  " already has feedback; the first label stays");
    case FeedbackStatus::kRecorded:
      break;
  }
  std::string body = "{\"model_name\":" + json_quote(model_name_) +
                     ",\"model_version\":" + json_quote(out.version) +
                     ",\"request_id\":" + json_quote(fb.request_id) +
                     ",\"predicted_class\":" + std::to_string(out.predicted_class) +
                     ",\"label\":" + std::to_string(fb.label) +
                     ",\"correct\":" + (out.correct ? "true" : "false") + "}";
  return {200, std::move(body), kJsonContentType, {}};
}

}  // namespace simdnn::serving
