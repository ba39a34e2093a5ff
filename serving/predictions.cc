#include "simdnn/serving/predictions.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>

#include "simdnn/evaluation.h"

namespace simdnn::serving {

namespace {

using json = nlohmann::json;
// A json whose numbers are float32: dump() prints a float as the shortest decimal that reads
// back as the same float (not as 17 digits of a double), in nlohmann's form ("1.0").
using float_json = nlohmann::basic_json<std::map, std::vector, std::string, bool, std::int64_t,
                                        std::uint64_t, float>;

}  // namespace

std::string label_of(const ModelInfo& info, size_t c) {
  return c < info.class_names.size() ? info.class_names[c] : std::to_string(c);
}

PredictionWriter::PredictionWriter(const ModelInfo& info, size_t num_classes, FloatStyle style)
    : style_(style), version_json_(json(info.version).dump()) {
  label_json_.reserve(num_classes);
  for (size_t c = 0; c < num_classes; ++c) label_json_.push_back(json(label_of(info, c)).dump());
}

void PredictionWriter::append_float(std::string& out, float v) const {
  if (style_ == FloatStyle::kJsonLibrary) {
    out += float_json(v).dump();  // null for NaN and infinity
    return;
  }
  if (!std::isfinite(v)) {
    out += "null";  // JSON has no NaN or infinity
    return;
  }
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back as v
  out.append(buf, r.ptr);
}

void PredictionWriter::append_prediction(std::string& out, std::span<const float> p,
                                         std::span<const size_t> order, size_t k,
                                         std::optional<std::string_view> file) const {
  out += R"({"class":)";
  out += std::to_string(order[0]);
  if (file) {
    out += R"(,"file":)";
    out += json(std::string(*file)).dump();
  }
  out += R"(,"label":)";
  out += label_json_[order[0]];
  out += R"(,"probabilities":[)";
  for (size_t c = 0; c < p.size(); ++c) {
    if (c) out += ',';
    append_float(out, p[c]);
  }
  out += R"(],"top_k":[)";
  for (size_t j = 0; j < k; ++j) {
    const size_t c = order[j];
    if (j) out += ',';
    out += R"({"class":)";
    out += std::to_string(c);
    out += R"(,"label":)";
    out += label_json_[c];
    out += R"(,"probability":)";
    append_float(out, p[c]);
    out += '}';
  }
  out += "]}";
}

void PredictionWriter::write_response(std::string& out, const Tensor& probs, size_t k,
                                      std::vector<size_t>& order) const {
  out.clear();
  out += R"({"model_version":)";
  out += version_json_;
  out += R"(,"predictions":[)";
  const size_t classes = probs.cols();
  for (size_t r = 0; r < probs.rows(); ++r) {
    const std::span<const float> p(probs.data() + r * classes, classes);
    top_k_classes(p, k, order);
    if (r) out += ',';
    append_prediction(out, p, order, k);
  }
  out += "]}";
}

}  // namespace simdnn::serving
