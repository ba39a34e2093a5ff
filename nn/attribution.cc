#include "simdnn/attribution.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

#include "simdnn/dense.h"
#include "simdnn/layers.h"
#include "simdnn/vector_kernels.h"

namespace simdnn {

double Attribution::sum() const {
  return std::accumulate(values.begin(), values.end(), 0.0);
}

Explainer::Explainer(const Model& model, AttributionOptions options)
    : model_(model), options_(options), tape_(options.threads) {
  for (const auto& layer : model_.network().layers()) {
    if (!dynamic_cast<const Dense*>(layer.get()) &&
        !dynamic_cast<const ActivationLayer*>(layer.get())) {
      throw std::invalid_argument(
          "Explainer: only models of Dense and activation layers can be explained");
    }
  }
}

void Explainer::check(std::span<const float> x, size_t target_class, const char* what) const {
  const size_t features = model_.info().input_size();
  if (x.size() != features) {
    throw std::invalid_argument(std::string(what) + ": the input has " +
                                std::to_string(x.size()) + " features, the model expects " +
                                std::to_string(features));
  }
  if (target_class >= model_.num_classes()) {
    throw std::invalid_argument(std::string(what) + ": class " + std::to_string(target_class) +
                                " is outside the model's " +
                                std::to_string(model_.num_classes()) + " classes");
  }
}

Var Explainer::record_and_differentiate(const Tensor& x, size_t target_class) {
  tape_.clear();
  input_ = tape_.differentiable_input(x);
  Var y = input_;
  const auto& layers = model_.network().layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    if (const auto* dense = dynamic_cast<const Dense*>(layers[i].get())) {
      // The weights are recorded as data: no parameter gradient is computed or touched.
      y = tape_.dense(y, tape_.input(dense->weight.value), tape_.input(dense->bias.value));
      continue;
    }
    const Activation a = static_cast<const ActivationLayer&>(*layers[i]).activation();
    const bool final_softmax = i + 1 == layers.size() && a == Activation::kSoftmax;
    if (a == Activation::kLinear || (final_softmax && options_.target == AttributionTarget::kLogit)) {
      continue;
    }
    y = tape_.activation(y, a);
  }
  tape_.backward(tape_.sum_column(y, target_class));
  return y;
}

const Tensor& Explainer::input_gradient(const Tensor& x, size_t target_class) {
  if (x.rank() != 2 || x.rows() == 0 || x.cols() != model_.info().input_size()) {
    throw std::invalid_argument("input_gradient: input " + x.shape().to_string() +
                                " is not [rows > 0, " +
                                std::to_string(model_.info().input_size()) + "]");
  }
  check(x.row(0), target_class, "input_gradient");
  record_and_differentiate(x, target_class);
  return tape_.grad(input_);
}

Attribution Explainer::gradient_times_input(std::span<const float> x, size_t target_class) {
  check(x, target_class, "gradient_times_input");
  const size_t n = x.size();
  // Row 0: x; row 1: the black baseline, for baseline_output.
  batch_.resize(Shape{2, n});
  std::copy(x.begin(), x.end(), batch_.data());
  std::fill_n(batch_.data() + n, n, 0.0f);
  const Var out = record_and_differentiate(batch_, target_class);
  const Tensor& f = tape_.value(out);
  const Tensor& g = tape_.grad(input_);
  Attribution a;
  a.target_class = target_class;
  a.output = f.data()[target_class];
  a.baseline_output = f.data()[f.cols() + target_class];
  a.values.resize(n);
  for (size_t i = 0; i < n; ++i) a.values[i] = x[i] * g[i];
  return a;
}

Attribution Explainer::integrated_gradients(std::span<const float> x, size_t target_class,
                                            size_t steps, std::span<const float> baseline) {
  check(x, target_class, "integrated_gradients");
  if (steps == 0) throw std::invalid_argument("integrated_gradients: steps must be positive");
  const size_t n = x.size();
  if (!baseline.empty() && baseline.size() != n) {
    throw std::invalid_argument("integrated_gradients: the baseline has " +
                                std::to_string(baseline.size()) + " features, the input " +
                                std::to_string(n));
  }
  auto base = [&](size_t i) { return baseline.empty() ? 0.0f : baseline[i]; };
  // Rows 0..steps-1: the midpoints of the path; row steps: x; row steps + 1: the baseline.
  batch_.resize(Shape{steps + 2, n});
  float* b = batch_.data();
  for (size_t k = 0; k < steps; ++k) {
    const float alpha = (static_cast<float>(k) + 0.5f) / static_cast<float>(steps);
    float* row = b + k * n;
    for (size_t i = 0; i < n; ++i) row[i] = base(i) + alpha * (x[i] - base(i));
  }
  std::copy(x.begin(), x.end(), b + steps * n);
  for (size_t i = 0; i < n; ++i) b[(steps + 1) * n + i] = base(i);

  const Var out = record_and_differentiate(batch_, target_class);
  const Tensor& f = tape_.value(out);
  const Tensor& g = tape_.grad(input_);
  Attribution a;
  a.target_class = target_class;
  a.output = f.data()[steps * f.cols() + target_class];
  a.baseline_output = f.data()[(steps + 1) * f.cols() + target_class];
  a.values.resize(n);
  column_sum(steps, n, g.data(), n, a.values.data(), false);
  const float inv_steps = 1.0f / static_cast<float>(steps);
  for (size_t i = 0; i < n; ++i) a.values[i] *= (x[i] - base(i)) * inv_steps;
  return a;
}

std::vector<AttributionRegion> strongest_regions(std::span<const float> values, size_t width,
                                                 size_t height, size_t cell, size_t count) {
  if (cell == 0 || values.size() != width * height) {
    throw std::invalid_argument("strongest_regions: " + std::to_string(values.size()) +
                                " values for a " + std::to_string(width) + "x" +
                                std::to_string(height) + " map in cells of " +
                                std::to_string(cell));
  }
  std::vector<AttributionRegion> regions;
  for (size_t top = 0; top < height; top += cell) {
    for (size_t left = 0; left < width; left += cell) {
      AttributionRegion r{top, left, std::min(cell, height - top), std::min(cell, width - left), 0.0};
      for (size_t y = top; y < top + r.height; ++y) {
        for (size_t x = left; x < left + r.width; ++x) r.sum += values[y * width + x];
      }
      regions.push_back(r);
    }
  }
  // Stable: equal sums keep reading order (top to bottom, left to right).
  std::stable_sort(regions.begin(), regions.end(),
                   [](const AttributionRegion& a, const AttributionRegion& b) { return a.sum > b.sum; });
  regions.resize(std::min(count, regions.size()));
  return regions;
}

Attribution gradient_times_input(const Model& model, std::span<const float> x,
                                 size_t target_class, AttributionOptions options) {
  return Explainer(model, options).gradient_times_input(x, target_class);
}

Attribution integrated_gradients(const Model& model, std::span<const float> x,
                                 size_t target_class, size_t steps,
                                 std::span<const float> baseline, AttributionOptions options) {
  return Explainer(model, options).integrated_gradients(x, target_class, steps, baseline);
}

}  // namespace simdnn
