// Turning a model's class probabilities into output, shared by tools/serve (the /predict
// response) and tools/predict (its text and JSON Lines output): the top-k ranking, class
// labels, and the prediction JSON. Formats: docs/serving.md and `predict --help`.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "simdnn/model.h"
#include "simdnn/tensor.h"

namespace simdnn::serving {

// The label of class c: its name from the model file, or the index as a string when the model
// names fewer classes (MNIST digits need no names).
std::string label_of(const ModelInfo& info, size_t c);

// How a probability (a float) is printed in JSON. Both read back as the same float; they
// differ in form, and each tool keeps the one it has always printed.
enum class FloatStyle {
  // std::to_chars: the shortest text ("1", "0", "1e-04", "0.25"). tools/serve.
  kShortest,
  // nlohmann::json's float output: always a '.' or an exponent ("1.0", "0.0", "0.0001").
  // tools/predict, whose lines were dumped from a float-typed json.
  kJsonLibrary,
};

// Writes predictions as JSON, with the class labels JSON-quoted once up front. Non-finite
// probabilities print as null (JSON has no NaN or infinity).
class PredictionWriter {
 public:
  // num_classes: the model's outputs (labels beyond its class names are indices).
  PredictionWriter(const ModelInfo& info, size_t num_classes, FloatStyle style);

  // Appends one prediction for the probabilities p, given order from top_k_classes(p, k, order) (<simdnn/evaluation.h>):
  //   {"class":3,"label":"Dress","probabilities":[...],
  //    "top_k":[{"class":3,"label":"Dress","probability":0.9},...]}
  // With `file` (tools/predict), "file":"..." follows "class": the keys stay in alphabetical
  // order, as predict's std::map-based json always printed them.
  void append_prediction(std::string& out, std::span<const float> p,
                         std::span<const size_t> order, size_t k,
                         std::optional<std::string_view> file = std::nullopt) const;

  // The /predict response body, replacing `out` (its capacity is reused):
  //   {"model_version":"...","predictions":[one prediction per row of probs]}
  // `order` is scratch space for top_k_classes. Requires 1 <= k <= probs.cols().
  void write_response(std::string& out, const Tensor& probs, size_t k,
                      std::vector<size_t>& order) const;

  // Class c's label, JSON-quoted.
  const std::string& label_json(size_t c) const { return label_json_[c]; }

 private:
  void append_float(std::string& out, float v) const;

  FloatStyle style_;
  std::vector<std::string> label_json_;
  std::string version_json_;
};

}  // namespace simdnn::serving
