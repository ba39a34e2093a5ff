// Internal: the body of POST /v2/models/{name}/feedback (docs/serving.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "simdnn/serving/predict_request.h"

namespace simdnn::serving {

// Feedback bodies are a few dozen bytes; anything larger than this is refused (413).
constexpr size_t kMaxFeedbackBodyBytes = 16 * 1024;

struct FeedbackRequest {
  std::string request_id;
  int32_t label = 0;
};

// {"request_id": "<the prediction's X-Request-Id>", "label": <class index> | "<class name>"}.
// request_id: 1..128 printable ASCII characters (the ids the service hands out or accepts).
// label: an integer in 0..num_classes-1, or one of class_names. Other fields are ignored.
// Errors: 400 naming the field (malformed JSON, missing or wrong type, unknown class name,
// label out of range), 413 for a body over kMaxFeedbackBodyBytes.
std::optional<RequestError> parse_feedback_json(std::string_view body,
                                                const std::vector<std::string>& class_names,
                                                size_t num_classes, FeedbackRequest& out);

// "/v2/models/{name}/feedback" -> name (not percent-decoded); nullopt for any other path.
std::optional<std::string_view> feedback_model_of(std::string_view path);

}  // namespace simdnn::serving
