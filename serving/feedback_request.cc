#include "feedback_request.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "json_errors.h"
#include "request_id.h"

namespace simdnn::serving {

std::optional<RequestError> parse_feedback_json(std::string_view body,
                                                const std::vector<std::string>& class_names,
                                                size_t num_classes, FeedbackRequest& out) {
  if (body.size() > kMaxFeedbackBodyBytes) {
    return RequestError{413, "feedback body of " + std::to_string(body.size()) +
                                 " bytes; the limit is " + std::to_string(kMaxFeedbackBodyBytes)};
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(body);
  } catch (const nlohmann::json::parse_error& e) {
    return RequestError{400, malformed_json_message(e)};
  }
  if (!j.is_object()) return RequestError{400, "the feedback body must be a JSON object"};
  const auto id = j.find("request_id");
  if (id == j.end() || !id->is_string()) {
    return RequestError{400, "\"request_id\" (string) is required: the X-Request-Id of the "
                             "prediction"};
  }
  const std::string& rid = id->get_ref<const std::string&>();
  if (rid.empty() || rid.size() > kMaxRequestIdLength ||
      !std::all_of(rid.begin(), rid.end(), [](char c) { return c >= 0x20 && c <= 0x7e; })) {
    return RequestError{400, "\"request_id\" must be 1.." + std::to_string(kMaxRequestIdLength) +
                                 " printable ASCII characters"};
  }
  const auto label = j.find("label");
  if (label == j.end()) {
    return RequestError{400, "\"label\" is required: a class index or a class name"};
  }
  if (label->is_number_integer()) {
    const int64_t v = label->get<int64_t>();
    if (v < 0 || static_cast<uint64_t>(v) >= num_classes) {
      return RequestError{400, "\"label\" " + std::to_string(v) + " is not a class index 0.." +
                                   std::to_string(num_classes - 1)};
    }
    out.label = static_cast<int32_t>(v);
  } else if (label->is_string()) {
    const std::string& name = label->get_ref<const std::string&>();
    const auto it = std::find(class_names.begin(), class_names.end(), name);
    if (it == class_names.end()) {
      return RequestError{400, "\"label\" is not one of the model's class names"};
    }
    out.label = static_cast<int32_t>(it - class_names.begin());
  } else {
    return RequestError{400, "\"label\" must be a class index (integer) or a class name (string)"};
  }
  out.request_id = rid;
  return std::nullopt;
}

std::optional<std::string_view> feedback_model_of(std::string_view path) {
  constexpr std::string_view prefix = "/v2/models/", suffix = "/feedback";
  if (path.size() <= prefix.size() + suffix.size() || !path.starts_with(prefix) ||
      !path.ends_with(suffix)) {
    return std::nullopt;
  }
  const std::string_view name =
      path.substr(prefix.size(), path.size() - prefix.size() - suffix.size());
  if (name.empty() || name.find('/') != std::string_view::npos) return std::nullopt;
  return name;
}

}  // namespace simdnn::serving
